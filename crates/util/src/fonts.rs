//! The plot font: DejaVu Sans (regular, bold, oblique) as `sans-serif` and DejaVu Sans Mono as
//! `monospace`, from the `dejavu` crate, registered for plotters' `ab_glyph` text backend
//! (which has no system font lookup). Every crate that draws calls [`register_fonts`].

use plotters::style::{register_font, FontStyle};
use std::sync::Once;

/// Registers the fonts once per process; later calls do nothing.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let faces = [
            ("sans-serif", FontStyle::Normal, dejavu::sans::regular()),
            ("sans-serif", FontStyle::Bold, dejavu::sans::bold()),
            ("sans-serif", FontStyle::Oblique, dejavu::sans::oblique()),
            ("sans-serif", FontStyle::Italic, dejavu::sans::oblique()),
            ("monospace", FontStyle::Normal, dejavu::sans_mono::regular()),
        ];
        for (name, style, bytes) in faces {
            // A face that fails to register only loses that style.
            let _ = register_font(name, style, bytes);
        }
    });
}
