//! The side-by-side binaries answer `--help` (clap) and refuse a bad flag with a message naming
//! it; building this test also makes `cargo test` build them, for the `gpu-script` stage of
//! `cargo xtask test`.

use std::process::Command;

const BINS: &[(&str, &str)] = &[
    ("vit_bench", env!("CARGO_BIN_EXE_vit_bench")),
    ("mae_bench", env!("CARGO_BIN_EXE_mae_bench")),
    ("gpu_check", env!("CARGO_BIN_EXE_gpu_check")),
    ("oad_bench", env!("CARGO_BIN_EXE_oad_bench")),
    ("contrastive_bench", env!("CARGO_BIN_EXE_contrastive_bench")),
    (
        "smooth_metrics_bench",
        env!("CARGO_BIN_EXE_smooth_metrics_bench"),
    ),
    ("det_bench", env!("CARGO_BIN_EXE_det_bench")),
    ("det_pyramid_bench", env!("CARGO_BIN_EXE_det_pyramid_bench")),
    ("anchorfree_bench", env!("CARGO_BIN_EXE_anchorfree_bench")),
    ("yolo_bench", env!("CARGO_BIN_EXE_yolo_bench")),
];

#[test]
fn every_bench_binary_has_help_and_rejects_unknown_flags() {
    for (name, exe) in BINS {
        let help = Command::new(exe).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success(), "{name} --help failed");
        assert!(
            text.contains("Usage:") && text.contains("Options:"),
            "{name} --help: {text}"
        );
        let bad = Command::new(exe).arg("--no-such-flag").output().unwrap();
        assert!(!bad.status.success(), "{name} accepted --no-such-flag");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("--no-such-flag"),
            "{name}: the error does not name the flag"
        );
    }
}
