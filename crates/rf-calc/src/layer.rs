//! Layers: what each op does to the geometry, separately along height and width.

use serde::{Deserialize, Serialize};

/// A `[height, width]` pair.
pub type Pair = [i64; 2];

/// Largest kernel, stride, dilation, padding or factor accepted (keeps the arithmetic far from
/// overflow).
pub const MAX_PARAM: i64 = 1 << 16;

/// One spatial axis. Index 0 is height (vertical, `y`), 1 is width (horizontal, `x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    /// Height (rows, `y`).
    H,
    /// Width (columns, `x`).
    W,
}

impl Axis {
    /// Height, then width.
    pub const BOTH: [Axis; 2] = [Axis::H, Axis::W];

    /// Index in `[height, width]` pairs: 0 for height, 1 for width.
    pub fn index(self) -> usize {
        match self {
            Axis::H => 0,
            Axis::W => 1,
        }
    }

    /// `height` or `width`.
    pub fn name(self) -> &'static str {
        match self {
            Axis::H => "height",
            Axis::W => "width",
        }
    }
}

/// Padding along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AxisPadding {
    /// No padding.
    Valid,
    /// TensorFlow `SAME`: output size `ceil(n / s)`, total padding
    /// `max((ceil(n / s) - 1) s + k_eff - n, 0)`, the smaller half at the beginning. The total
    /// depends on the input size `n` unless the stride is 1 or the kernel 1.
    Same,
    /// Fixed padding before and after (PyTorch `padding=p` is `begin = end = p`).
    Explicit {
        /// Before (top or left).
        begin: i64,
        /// After (bottom or right).
        end: i64,
    },
}

impl AxisPadding {
    /// The padding at the beginning (top/left) and end, for input size `n` when known.
    ///
    /// For `SAME` without `n` the beginning is returned when every residue of `n` modulo the
    /// stride gives the same value (always for stride 1 or kernel 1; for stride 2 when the
    /// kernel is even), and the end is unknown.
    pub fn resolve(self, k_eff: i64, s: i64, n: Option<i64>) -> (Option<i64>, Option<i64>) {
        match self {
            AxisPadding::Valid => (Some(0), Some(0)),
            AxisPadding::Explicit { begin, end } => (Some(begin), Some(end)),
            AxisPadding::Same => match n {
                Some(n) => {
                    let total = same_total(k_eff, s, n);
                    (Some(total / 2), Some(total - total / 2))
                }
                None => {
                    // n mod s = r in 1..s gives total k - r; r = 0 gives k - s.
                    let begins: Vec<i64> = (1..=s).map(|r| (k_eff - r).max(0) / 2).collect();
                    let first = begins[0];
                    if begins.iter().all(|&b| b == first) {
                        (Some(first), None)
                    } else {
                        (None, None)
                    }
                }
            },
        }
    }
}

/// Total `SAME` padding for input size `n`.
pub fn same_total(k_eff: i64, s: i64, n: i64) -> i64 {
    let out = (n + s - 1).div_euclid(s);
    ((out - 1) * s + k_eff - n).max(0)
}

/// Padding along both axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Padding {
    /// Along height.
    pub h: AxisPadding,
    /// Along width.
    pub w: AxisPadding,
}

impl Padding {
    /// No padding.
    pub const VALID: Padding = Padding {
        h: AxisPadding::Valid,
        w: AxisPadding::Valid,
    };
    /// TensorFlow `SAME` along both axes.
    pub const SAME: Padding = Padding {
        h: AxisPadding::Same,
        w: AxisPadding::Same,
    };

    /// The same padding `p` on all four sides (PyTorch `padding=p`).
    pub fn sym(p: i64) -> Padding {
        Padding::hw(p, p)
    }

    /// Symmetric padding `ph` on top and bottom, `pw` left and right.
    pub fn hw(ph: i64, pw: i64) -> Padding {
        Padding {
            h: AxisPadding::Explicit { begin: ph, end: ph },
            w: AxisPadding::Explicit { begin: pw, end: pw },
        }
    }

    /// The padding along axis `a`.
    pub fn axis(&self, a: Axis) -> AxisPadding {
        match a {
            Axis::H => self.h,
            Axis::W => self.w,
        }
    }
}

/// A sliding window: convolution or pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Kernel `[kh, kw]`.
    pub kernel: Pair,
    /// Stride `[sh, sw]`.
    pub stride: Pair,
    /// Dilation `[dh, dw]` (1: none).
    pub dilation: Pair,
    /// Padding.
    pub padding: Padding,
}

impl Window {
    /// A square window `k x k` with stride `s`.
    pub fn square(k: i64, s: i64, padding: Padding) -> Window {
        Window {
            kernel: [k, k],
            stride: [s, s],
            dilation: [1, 1],
            padding,
        }
    }

    /// Effective kernel `d (k - 1) + 1` along an axis.
    pub fn k_eff(&self, a: Axis) -> i64 {
        let i = a.index();
        self.dilation[i] * (self.kernel[i] - 1) + 1
    }
}

/// Channel grouping of a convolution (no effect on the geometry; used to build the net for the
/// empirical receptive field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Groups {
    /// A dense convolution.
    Dense,
    /// One filter per input channel.
    Depthwise,
}

/// Pooling kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// Max pooling.
    Max,
    /// Average pooling.
    Avg,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The image.
    Input,
    /// Convolution (dense, depthwise or dilated).
    Conv {
        /// Kernel, stride, dilation, padding.
        window: Window,
        /// Output channels, when known (only the empirical receptive field needs them).
        channels: Option<i64>,
        /// Dense or depthwise.
        groups: Groups,
    },
    /// Max or average pooling; `ceil_mode` as in PyTorch.
    Pool {
        /// Max or average.
        kind: PoolKind,
        /// Kernel, stride, dilation, padding.
        window: Window,
        /// PyTorch's `ceil_mode`: a last window may start in the padding.
        ceil_mode: bool,
    },
    /// Explicit zero padding (`tf.pad`, `nn.ZeroPad2d`): `[begin, end]` per axis.
    Pad {
        /// Rows `[top, bottom]`.
        h: [i64; 2],
        /// Columns `[left, right]`.
        w: [i64; 2],
    },
    /// Nearest-neighbour upsampling by an integer factor per axis.
    Upsample {
        /// Factor `[fh, fw]`.
        factor: Pair,
    },
    /// Transposed convolution (PyTorch semantics: output `o = i s - p + t`, `t < k`).
    ConvTranspose {
        /// Kernel `[kh, kw]`.
        kernel: Pair,
        /// Stride `[sh, sw]`.
        stride: Pair,
        /// PyTorch's `padding`, cropped from each side of the output.
        padding: Pair,
        /// PyTorch's `output_padding`, added at the end (smaller than the stride).
        output_padding: Pair,
        /// Output channels, when known.
        channels: Option<i64>,
    },
    /// Element-wise sum of two or more inputs.
    Add,
    /// Channel concatenation of two or more inputs.
    Concat,
    /// Anything that keeps the geometry: activation, normalisation, dropout.
    Identity,
}

/// What an op does along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AxisOp {
    Input,
    /// Window of effective size `k`, stride `s`.
    Window {
        k: i64,
        s: i64,
        pad: AxisPadding,
        ceil_mode: bool,
    },
    Upsample {
        f: i64,
    },
    Transposed {
        k: i64,
        s: i64,
        p: i64,
        output_padding: i64,
    },
    Merge,
}

impl Op {
    /// A square convolution with stride `s`.
    pub fn conv(k: i64, s: i64, padding: Padding) -> Op {
        Op::Conv {
            window: Window::square(k, s, padding),
            channels: None,
            groups: Groups::Dense,
        }
    }

    /// A `kh x kw` convolution with stride 1 (Inception's `1x7` / `7x1`).
    pub fn conv_hw(kh: i64, kw: i64, padding: Padding) -> Op {
        Op::Conv {
            window: Window {
                kernel: [kh, kw],
                stride: [1, 1],
                dilation: [1, 1],
                padding,
            },
            channels: None,
            groups: Groups::Dense,
        }
    }

    /// A square depthwise convolution.
    pub fn depthwise(k: i64, s: i64, padding: Padding) -> Op {
        Op::Conv {
            window: Window::square(k, s, padding),
            channels: None,
            groups: Groups::Depthwise,
        }
    }

    /// Max pooling `k x k`, stride `s`.
    pub fn max_pool(k: i64, s: i64, padding: Padding) -> Op {
        Op::Pool {
            kind: PoolKind::Max,
            window: Window::square(k, s, padding),
            ceil_mode: false,
        }
    }

    /// Average pooling `k x k`, stride `s`.
    pub fn avg_pool(k: i64, s: i64, padding: Padding) -> Op {
        Op::Pool {
            kind: PoolKind::Avg,
            window: Window::square(k, s, padding),
            ceil_mode: false,
        }
    }

    /// Sets the number of output channels of a convolution (used by the empirical receptive
    /// field to build the net); other ops are returned unchanged.
    pub fn with_channels(mut self, c: i64) -> Op {
        match &mut self {
            Op::Conv { channels, .. } | Op::ConvTranspose { channels, .. } => *channels = Some(c),
            _ => {}
        }
        self
    }

    /// Whether the op merges several inputs.
    pub fn is_merge(&self) -> bool {
        matches!(self, Op::Add | Op::Concat)
    }

    /// Short name of the op kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv {
                groups: Groups::Depthwise,
                ..
            } => "depthwise_conv",
            Op::Conv { .. } => "conv",
            Op::Pool {
                kind: PoolKind::Max,
                ..
            } => "max_pool",
            Op::Pool { .. } => "avg_pool",
            Op::Pad { .. } => "pad",
            Op::Upsample { .. } => "upsample",
            Op::ConvTranspose { .. } => "conv_transpose",
            Op::Add => "add",
            Op::Concat => "concat",
            Op::Identity => "identity",
        }
    }

    /// One-line description: kind, kernel, stride, padding.
    pub fn describe(&self) -> String {
        let pair = |p: Pair| {
            if p[0] == p[1] {
                format!("{}", p[0])
            } else {
                format!("{}x{}", p[0], p[1])
            }
        };
        let pad = |p: &Padding| match (p.h, p.w) {
            (AxisPadding::Valid, AxisPadding::Valid) => "valid".to_owned(),
            (AxisPadding::Same, AxisPadding::Same) => "same".to_owned(),
            (h, w) => format!("{}/{}", axis_pad(h), axis_pad(w)),
        };
        match self {
            Op::Conv { window: w, .. } | Op::Pool { window: w, .. } => {
                let mut s = format!(
                    "{} k{} s{} {}",
                    self.kind(),
                    pair(w.kernel),
                    pair(w.stride),
                    pad(&w.padding)
                );
                if w.dilation != [1, 1] {
                    s.push_str(&format!(" d{}", pair(w.dilation)));
                }
                s
            }
            Op::Pad { h, w } => format!("pad h{h:?} w{w:?}"),
            Op::Upsample { factor } => format!("upsample x{}", pair(*factor)),
            Op::ConvTranspose {
                kernel,
                stride,
                padding,
                ..
            } => format!(
                "conv_transpose k{} s{} p{}",
                pair(*kernel),
                pair(*stride),
                pair(*padding)
            ),
            other => other.kind().to_owned(),
        }
    }

    pub(crate) fn axis(&self, a: Axis) -> AxisOp {
        let i = a.index();
        match self {
            Op::Input => AxisOp::Input,
            Op::Conv { window, .. } => AxisOp::Window {
                k: window.k_eff(a),
                s: window.stride[i],
                pad: window.padding.axis(a),
                ceil_mode: false,
            },
            Op::Pool {
                window, ceil_mode, ..
            } => AxisOp::Window {
                k: window.k_eff(a),
                s: window.stride[i],
                pad: window.padding.axis(a),
                ceil_mode: *ceil_mode,
            },
            Op::Pad { h, w } => {
                let [begin, end] = if i == 0 { *h } else { *w };
                AxisOp::Window {
                    k: 1,
                    s: 1,
                    pad: AxisPadding::Explicit { begin, end },
                    ceil_mode: false,
                }
            }
            Op::Upsample { factor } => AxisOp::Upsample { f: factor[i] },
            Op::ConvTranspose {
                kernel,
                stride,
                padding,
                output_padding,
                ..
            } => AxisOp::Transposed {
                k: kernel[i],
                s: stride[i],
                p: padding[i],
                output_padding: output_padding[i],
            },
            Op::Add | Op::Concat => AxisOp::Merge,
            Op::Identity => AxisOp::Window {
                k: 1,
                s: 1,
                pad: AxisPadding::Valid,
                ceil_mode: false,
            },
        }
    }

    /// Checks the parameters a user controls; `name` is the layer's name for the message.
    pub(crate) fn validate(&self, name: &str) -> crate::Result<()> {
        let bad = |m: String| Err(crate::RfError::layer(name, m));
        let positive = |what: &str, p: Pair| -> crate::Result<()> {
            if p[0] < 1 || p[1] < 1 {
                return bad(format!("{what} must be >= 1, got {p:?}"));
            }
            if p[0] > MAX_PARAM || p[1] > MAX_PARAM {
                return bad(format!("{what} must be <= {MAX_PARAM}, got {p:?}"));
            }
            Ok(())
        };
        let non_negative = |what: &str, v: i64| -> crate::Result<()> {
            if !(0..=MAX_PARAM).contains(&v) {
                return bad(format!("{what} must be in 0..={MAX_PARAM}, got {v}"));
            }
            Ok(())
        };
        match self {
            Op::Conv { window, .. } | Op::Pool { window, .. } => {
                positive("kernel", window.kernel)?;
                positive("stride", window.stride)?;
                positive("dilation", window.dilation)?;
                for a in Axis::BOTH {
                    if let AxisPadding::Explicit { begin, end } = window.padding.axis(a) {
                        non_negative("padding", begin)?;
                        non_negative("padding", end)?;
                    }
                }
                if let Op::Conv {
                    channels: Some(c), ..
                } = self
                {
                    if *c < 1 {
                        return bad(format!("channels must be >= 1, got {c}"));
                    }
                }
            }
            Op::Pad { h, w } => {
                for v in h.iter().chain(w) {
                    non_negative("padding", *v)?;
                }
            }
            Op::Upsample { factor } => positive("factor", *factor)?,
            Op::ConvTranspose {
                kernel,
                stride,
                padding,
                output_padding,
                ..
            } => {
                positive("kernel", *kernel)?;
                positive("stride", *stride)?;
                for i in 0..2 {
                    non_negative("padding", padding[i])?;
                    non_negative("output_padding", output_padding[i])?;
                    if output_padding[i] >= stride[i] {
                        return bad(format!(
                            "output_padding {} must be smaller than the stride {}",
                            output_padding[i], stride[i]
                        ));
                    }
                }
            }
            Op::Input | Op::Add | Op::Concat | Op::Identity => {}
        }
        Ok(())
    }
}

fn axis_pad(p: AxisPadding) -> String {
    match p {
        AxisPadding::Valid => "valid".to_owned(),
        AxisPadding::Same => "same".to_owned(),
        AxisPadding::Explicit { begin, end } if begin == end => format!("p{begin}"),
        AxisPadding::Explicit { begin, end } => format!("p{begin},{end}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_follows_tensorflow() {
        // k 3 s 2: even input pads 1 in total (0 before), odd input pads 2 (1 before).
        assert_eq!(
            AxisPadding::Same.resolve(3, 2, Some(112)),
            (Some(0), Some(1))
        );
        assert_eq!(
            AxisPadding::Same.resolve(3, 2, Some(161)),
            (Some(1), Some(1))
        );
        // Unknown input: stride 1 and kernel 1 are determined, k 3 s 2 is not, k 2 s 2 is.
        assert_eq!(AxisPadding::Same.resolve(5, 1, None), (Some(2), None));
        assert_eq!(AxisPadding::Same.resolve(1, 2, None), (Some(0), None));
        assert_eq!(AxisPadding::Same.resolve(3, 2, None), (None, None));
        assert_eq!(AxisPadding::Same.resolve(2, 2, None), (Some(0), None));
        assert_eq!(AxisPadding::Same.resolve(7, 2, None), (None, None));
        assert_eq!(same_total(7, 2, 224), 5);
    }

    #[test]
    fn validation_names_the_layer() {
        let err = Op::conv(3, -1, Padding::SAME)
            .validate("conv9")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("conv9") && msg.contains("stride"), "{msg}");
        assert!(Op::conv(3, 1, Padding::sym(-1)).validate("c").is_err());
        assert!(Op::conv(3, 1, Padding::sym(1)).validate("c").is_ok());
        assert!(Op::conv(3, i64::MAX, Padding::VALID).validate("c").is_err());
    }
}
