//! Smooth-AP (Brown, Xie, Kalogeiton, Zisserman 2020, "Smooth-AP: Smoothing the Path Towards
//! Large-Scale Image Retrieval", arXiv 2007.12163) beside the hard average precision and
//! recall at k of the same embeddings.
//!
//! Every sample is a query; the relevance scores are cosine similarities `s_ij` of the
//! L2-normalised embeddings; the positive set `P_i` is every sample of the query's class, the
//! query itself included (as the official `Smooth_AP_loss.py` counts it). With
//! `G(d) = sigmoid(clamp(d / tau, -50, 50))` (the official exponent clamp),
//!
//! `R(j, S) = 1 + sum_{k in S, k != j} G(s_ik - s_ij)`,
//! `AP_i = 1/|P_i| sum_{j in P_i} R(j, P_i) / R(j, all)` (Eq. 7), loss `1 - mean_i AP_i`.
//!
//! The official code (and pytorch-metric-learning's `SmoothAPLoss`) need class-sorted batches
//! of equal class counts; this one masks by label, so any batch works and equals them on
//! theirs. Memory grows as `B^3` (the `[B, B, B]` differences).

use tch::{Kind, Tensor};

use crate::check;
use crate::error::{Result, SmoothError};

/// The paper's temperature.
pub const SMOOTH_AP_TAU: f64 = 0.01;

/// The official exponent clamp of the sigmoid.
pub const EXPONENT_CLAMP: f64 = 50.0;

fn inputs(embeddings: &Tensor, labels: &Tensor) -> Result<()> {
    check::scores("embeddings", embeddings)?;
    check::dims("embeddings", embeddings, 2, "[B, D] embeddings")?;
    let b = embeddings.size()[0];
    if labels.size() != [b] || labels.is_floating_point() {
        return Err(SmoothError::Shape {
            what: "labels",
            expected: format!("[{b}] integer labels, one per embedding"),
            got: labels.size(),
            kind: format!("{:?}", labels.kind()),
        });
    }
    if b < 2 {
        return Err(SmoothError::Config(format!(
            "a ranking needs at least 2 samples, got {b}"
        )));
    }
    Ok(())
}

fn cosine(embeddings: &Tensor) -> Tensor {
    let e = embeddings / embeddings.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    e.matmul(&e.transpose(0, 1))
}

fn same_class(labels: &Tensor, kind: Kind) -> Tensor {
    labels
        .unsqueeze(1)
        .eq_tensor(&labels.unsqueeze(0))
        .to_kind(kind)
}

/// The Smooth-AP of each query `[B]` (see the module docs).
pub fn smooth_ap(embeddings: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    check::temperature("tau", tau)?;
    inputs(embeddings, labels)?;
    let k = embeddings.kind();
    // d[i, j, k] = (s_ik - s_ij) / tau, from the scaled similarities (one [B, B, B] op).
    let s = cosine(embeddings) / tau;
    let d = s.unsqueeze(1) - s.unsqueeze(2);
    let g = d.clamp(-EXPONENT_CLAMP, EXPONENT_CLAMP).sigmoid();
    let pos = same_class(labels, k);
    // The k = j terms are sigmoid(0) = 1/2 (constant: d is identically 0 there, so they carry
    // no gradient): `1 + sum_{k != j}` is `sum_k + 1/2`. For j in P_i, k = j is in P_i too.
    let r_all = g.sum_dim_intlist([2i64].as_slice(), false, k) + 0.5;
    let r_pos = g.bmm(&pos.unsqueeze(2)).squeeze_dim(2) + 0.5;
    let per_query = (r_pos / r_all * &pos).sum_dim_intlist([1i64].as_slice(), false, k)
        / pos.sum_dim_intlist([1i64].as_slice(), false, k);
    Ok(per_query)
}

/// The Smooth-AP loss, `1 - mean_i AP_i`, at temperature `tau` ([`SMOOTH_AP_TAU`] in the paper).
pub fn smooth_ap_loss(embeddings: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    Ok(1.0 - smooth_ap(embeddings, labels, tau)?.mean(embeddings.kind()))
}

/// Hard average precision of each query over the cosine ranking of the others.
/// `include_query`: the query ranks among its own positives (the Smooth-AP convention, the
/// value [`smooth_ap`] tends to as `tau -> 0`); otherwise it is left out, the retrieval
/// evaluation convention. A query without positive (left out, alone in its class) gets AP 0.
pub fn average_precision(
    embeddings: &Tensor,
    labels: &Tensor,
    include_query: bool,
) -> Result<Vec<f64>> {
    inputs(embeddings, labels)?;
    let b = embeddings.size()[0];
    let s = cosine(&embeddings.to_kind(Kind::Double));
    let s = if include_query {
        s
    } else {
        // The query goes last, where it counts neither as hit nor as miss (masked below).
        let eye = Tensor::eye(b, (Kind::Double, s.device()));
        s - eye * 1e9
    };
    let (_, order) = s.sort_stable(true, 1, true);
    let pos = same_class(labels, Kind::Double);
    let hits = pos.gather(1, &order, false);
    let hits = if include_query {
        hits
    } else {
        hits.narrow(1, 0, b - 1)
    };
    let ranks = Tensor::arange_start(1, hits.size()[1] + 1, (Kind::Double, s.device()));
    let precision_at_hit = hits.cumsum(1, Kind::Double) / ranks.unsqueeze(0) * &hits;
    let n_pos = hits.sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
    let ap = precision_at_hit.sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
        / n_pos.clamp_min(1.0);
    Ok(Vec::<f64>::try_from(&ap)?)
}

/// Mean of [`average_precision`] over the queries.
pub fn mean_average_precision(
    embeddings: &Tensor,
    labels: &Tensor,
    include_query: bool,
) -> Result<f64> {
    let ap = average_precision(embeddings, labels, include_query)?;
    Ok(ap.iter().sum::<f64>() / ap.len() as f64)
}

/// Recall at `k` (the metric-learning convention): the fraction of queries with a sample of
/// their class among their `k` nearest others (cosine).
pub fn recall_at_k(embeddings: &Tensor, labels: &Tensor, k: i64) -> Result<f64> {
    inputs(embeddings, labels)?;
    let b = embeddings.size()[0];
    if !(1..b).contains(&k) {
        return Err(SmoothError::Config(format!(
            "recall at k {k} with {b} samples: expected 1 <= k < {b}"
        )));
    }
    let s = cosine(&embeddings.to_kind(Kind::Double))
        - Tensor::eye(b, (Kind::Double, embeddings.device())) * 1e9;
    let (_, nn) = s.topk(k, 1, true, true);
    let hit = labels
        .unsqueeze(1)
        .expand([b, k], false)
        .eq_tensor(&labels.index_select(0, &nn.reshape([-1])).view([b, k]));
    Ok(hit
        .any_dim(1, false)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fd_check, rand64};

    fn sorted_labels(classes: i64, per: i64) -> Tensor {
        Tensor::arange(classes, (Kind::Int64, tch::Device::Cpu))
            .repeat_interleave_self_int(per, None, None)
    }

    #[test]
    fn smooth_ap_tends_to_hard_ap_with_the_query_counted() {
        let e = rand64(&[12, 5], 31);
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1, 2, 1, 1, 0]);
        let soft = Vec::<f64>::try_from(&smooth_ap(&e, &y, 1e-6).unwrap()).unwrap();
        let hard = average_precision(&e, &y, true).unwrap();
        test_support::assert_all_close(&soft, &hard, test_support::Tol::abs(1e-6));
        // The query ranks first (cosine 1), so with only itself as positive AP is 1.
        let single = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let ap = smooth_ap(&e.narrow(0, 0, 4), &single, 0.01).unwrap();
        assert!((ap - 1.0).abs().max().double_value(&[]) < 1e-9);
    }

    #[test]
    fn hard_ap_by_hand_and_recall() {
        // 1-D "embeddings" on a circle: angles give the ranking from query 0.
        let a = Tensor::from_slice(&[0.0f64, 0.1, 0.2, 0.3, 0.4]);
        let e = Tensor::stack(&[a.cos(), a.sin()], 1);
        let y = Tensor::from_slice(&[0i64, 1, 0, 1, 0]);
        // Query 0, itself left out: ranking 1 (miss), 2 (hit), 3 (miss), 4 (hit): (1/2 + 2/4)/2.
        let ap = average_precision(&e, &y, false).unwrap();
        assert!((ap[0] - 0.5).abs() < 1e-12);
        // Query 0 counted: hit, miss, hit, miss, hit: (1 + 2/3 + 3/5)/3.
        let ap = average_precision(&e, &y, true).unwrap();
        assert!((ap[0] - (1.0 + 2.0 / 3.0 + 0.6) / 3.0).abs() < 1e-12);
        // Every nearest other has the other label; the three nearest always hold one's own.
        assert_eq!(recall_at_k(&e, &y, 1).unwrap(), 0.0);
        assert_eq!(recall_at_k(&e, &y, 3).unwrap(), 1.0);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let e = rand64(&[6, 3], 32);
        let y = sorted_labels(2, 3);
        fd_check("smooth_ap", &e, |e| smooth_ap_loss(e, &y, 0.5).unwrap());
        fd_check("smooth_ap tau 0.05", &e, |e| {
            smooth_ap_loss(e, &y, 0.05).unwrap()
        });
    }

    #[test]
    fn bad_inputs_are_errors() {
        let e = rand64(&[4, 3], 33);
        let y = sorted_labels(2, 2);
        assert!(matches!(
            smooth_ap_loss(&e, &y, -0.01),
            Err(SmoothError::Temperature { .. })
        ));
        assert!(matches!(
            smooth_ap_loss(&e, &sorted_labels(3, 2), 0.01),
            Err(SmoothError::Shape { .. })
        ));
        assert!(matches!(
            smooth_ap_loss(&e.narrow(0, 0, 1), &y.narrow(0, 0, 1), 0.01),
            Err(SmoothError::Config(_))
        ));
        assert!(matches!(
            recall_at_k(&e, &y, 4),
            Err(SmoothError::Config(_))
        ));
    }
}
