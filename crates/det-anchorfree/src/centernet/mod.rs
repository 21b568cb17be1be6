//! CenterNet: heatmap targets at stride 4, penalty-reduced focal loss, peak decoding (work in progress).
