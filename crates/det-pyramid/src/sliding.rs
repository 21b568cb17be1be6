//! Multi-scale sliding-window classifier over an image pyramid: the pre-FPN, pre-YOLO baseline (work in progress).
