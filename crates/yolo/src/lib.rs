//! yolo: YOLO v1 (Redmon et al. 2016, "You Only Look Once", arXiv 1506.02640) as in the paper,
//! with darknet's departures (`src/detection_layer.c`, CVPR-era `cfg/yolo.cfg`) as options.
//!
//! See `docs/yolo.md`.
