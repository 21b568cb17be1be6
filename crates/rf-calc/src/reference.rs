//! The published receptive-field table of google-research/receptive_field (TF-Slim nets, end-
//! points, input sizes unknown/224/321), and its comparison with the presets.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::analysis::{analyze, Options};
use crate::error::{Result, RfError};
use crate::presets;

/// The table's rows, verbatim (see the file's header for provenance).
pub const TABLE_MD: &str = include_str!("../reference/receptive_field_table.md");

/// The README's summary table: final end-point at 224, `(network, end-point, rf, stride,
/// padding)`.
pub const HEADLINE: [(&str, &str, i64, i64, i64); 12] = [
    ("alexnet_v2", "pool5", 195, 32, 64),
    ("vgg_16", "pool5", 212, 32, 90),
    ("inception_v2", "Mixed_5c", 699, 32, 318),
    ("inception_v3", "Mixed_7c", 1311, 32, 618),
    ("inception_v4", "Mixed_7d", 2071, 32, 998),
    ("inception_resnet_v2", "Conv2d_7b_1x1", 3039, 32, 1482),
    ("mobilenet_v1", "Conv2d_13_pointwise", 315, 32, 126),
    ("mobilenet_v1_075", "Conv2d_13_pointwise", 315, 32, 126),
    ("resnet_v1_50", "block4", 483, 32, 239),
    ("resnet_v1_101", "block4", 1027, 32, 511),
    ("resnet_v1_152", "block4", 1507, 32, 751),
    ("resnet_v1_200", "block4", 1763, 32, 879),
];

/// One published row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedRow {
    /// Network as printed in the table.
    pub network: String,
    /// Square input size; `None` = unknown.
    pub resolution: Option<i64>,
    /// End-point as printed (TF-Slim scope, sometimes with the model name in front).
    pub endpoint: String,
    /// Receptive field size `r`.
    pub rf: i64,
    /// Effective stride `S`.
    pub stride: i64,
    /// `None` = depends on the input size.
    pub padding: Option<i64>,
}

impl PublishedRow {
    /// The end-point's node name in the preset (the model scope dropped).
    pub fn node(&self) -> &str {
        self.endpoint
            .strip_prefix(&format!("{}/", self.network))
            .unwrap_or(&self.endpoint)
    }
}

fn opt(s: &str) -> std::result::Result<Option<i64>, String> {
    match s {
        "None" => Ok(None),
        _ => s
            .parse()
            .map(Some)
            .map_err(|_| format!("not a number: `{s}`")),
    }
}

/// Parses the table.
pub fn published() -> Result<Vec<PublishedRow>> {
    let mut rows = Vec::new();
    for (i, line) in TABLE_MD.lines().enumerate() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() != 7 || cells[0] == "CNN" || cells[0].starts_with(':') {
            continue;
        }
        let bad = |m: String| RfError::Invalid {
            what: format!("reference table line {}", i + 1),
            message: m,
        };
        let num = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| bad(format!("not a number: `{s}`")))
        };
        rows.push(PublishedRow {
            network: cells[0].to_owned(),
            resolution: opt(cells[1]).map_err(bad)?,
            endpoint: cells[2].to_owned(),
            rf: num(cells[4])?,
            stride: num(cells[5])?,
            padding: opt(cells[6]).map_err(bad)?,
        });
    }
    Ok(rows)
}

/// A published row beside ours.
#[derive(Debug, Clone, Serialize)]
pub struct RowCheck {
    /// The row as published.
    pub published: PublishedRow,
    /// `(rf, stride, padding)` computed by rf-calc, height and width equal.
    pub ours: Option<(i64, i64, Option<i64>)>,
    /// Why there is no number (or why height and width differ).
    pub error: Option<String>,
    /// Whether ours equals the published row.
    pub exact: bool,
}

/// Compares every published row with the presets (one analysis per network and size).
pub fn check_all() -> Result<Vec<RowCheck>> {
    let rows = published()?;
    let mut groups: BTreeMap<(String, Option<i64>), Vec<PublishedRow>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.network.clone(), r.resolution))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((network, res), rows) in groups {
        let analysis = presets::by_name(&network).and_then(|g| {
            analyze(
                &g,
                Options {
                    input: res.map(|n| [n, n]),
                    strict: Some(true),
                },
            )
        });
        for r in rows {
            let (ours, error) = match &analysis {
                Err(e) => (None, Some(e.to_string())),
                Ok(a) => match a.node(r.node()) {
                    Err(e) => (None, Some(e.to_string())),
                    Ok(n) if !n.is_square() => (None, Some(format!("not square: {:?}", n.rf))),
                    Ok(n) => {
                        let rf = n.rf[0];
                        let stride = if rf.stride.den == 1 {
                            rf.stride.num
                        } else {
                            -1
                        };
                        (Some((rf.size, stride, rf.padding)), None)
                    }
                },
            };
            let exact = ours == Some((r.rf, r.stride, r.padding));
            out.push(RowCheck {
                published: r,
                ours,
                error,
                exact,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_with_all_networks() {
        let rows = published().unwrap();
        assert!(rows.len() > 500, "{}", rows.len());
        let first = &rows[0];
        assert_eq!(first.node(), "conv1");
        assert_eq!((first.rf, first.stride, first.padding), (11, 4, Some(0)));
        assert!(rows.iter().any(|r| r.padding.is_none()));
        // The README's headline equals the table's final 224 rows.
        for (net, ep, rf, s, p) in HEADLINE {
            let row = rows
                .iter()
                .find(|r| r.network == net && r.resolution == Some(224) && r.node() == ep)
                .unwrap();
            assert_eq!((row.rf, row.stride, row.padding), (rf, s, Some(p)), "{net}");
        }
    }
}
