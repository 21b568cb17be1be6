//! The pipeline end to end on the cheapest claim: run, result.json, plot, REPORT.md.

use repro::claim::{run_claim, select};
use repro::registry;
use repro::report::{read_all, write_summary, Mode, Verdict};

#[test]
fn basics_bias_smoke_writes_a_reproduced_result_with_its_plot() {
    let dir = tempfile::tempdir().unwrap();
    let all = registry();
    let claims = select(&all, &["basics.bias".to_owned()]).unwrap();
    let perceptron = claims.iter().find(|c| c.id == "basics.bias").unwrap();
    let r = run_claim(
        perceptron,
        Mode::Smoke,
        tch::Device::Cpu,
        None,
        dir.path(),
        7,
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Reproduced, "{}", r.value_text);
    assert_eq!(r.value, Some(1.0));
    let png = dir.path().join("basics.bias").join(&r.plots[0]);
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{}",
        png.display()
    );
    write_summary(dir.path()).unwrap();
    let back = read_all(dir.path()).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].seed, 7);
    let md = std::fs::read_to_string(dir.path().join("REPORT.md")).unwrap();
    assert!(md.contains("`basics.bias`") && md.contains("**reproduced**"));
}
