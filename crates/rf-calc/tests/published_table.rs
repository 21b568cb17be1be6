//! Every row of google-research/receptive_field's published table, reproduced by the presets.

use rf_calc::reference::{check_all, HEADLINE};

#[test]
fn every_published_row_is_reproduced_exactly() {
    let checks = check_all().unwrap();
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| !c.exact)
        .map(|c| {
            format!(
                "{} @{:?} {}: published ({}, {}, {:?}) ours {:?} {}",
                c.published.network,
                c.published.resolution,
                c.published.endpoint,
                c.published.rf,
                c.published.stride,
                c.published.padding,
                c.ours,
                c.error.clone().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} rows differ:\n{}",
        bad.len(),
        checks.len(),
        bad.join("\n")
    );
    assert!(checks.len() > 500);
    for (net, ep, ..) in HEADLINE {
        assert!(checks
            .iter()
            .any(|c| c.published.network == net && c.published.node() == ep));
    }
}
