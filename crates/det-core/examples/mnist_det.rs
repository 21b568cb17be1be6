//! Writes MNIST-det (the default recipe, or a JSON config) as a COCO folder and prints the box
//! counts per area range and a GT grid of the first canvases:
//!
//! ```sh
//! cargo run --release -p det-core --features tch --example mnist_det -- OUT_DIR [config.json]
//! ```
//!
//! `OUT_DIR/{train,test}/*.png`, `OUT_DIR/instances_{train,test}.json` (`det-eval --gt` and
//! pycocotools read them), `OUT_DIR/grid.png`. MNIST itself is fetched on first use.

use std::path::PathBuf;
use std::time::Instant;

use det_core::data::{draw_grid, AreaCounts, DetectionSet, GridItem, MnistDet, MnistDetConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: mnist_det OUT_DIR [config.json]")?,
    );
    let cfg: MnistDetConfig = match args.next() {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
        None => MnistDetConfig::default(),
    };
    let t = Instant::now();
    let (train, test) = MnistDet::load(None, &cfg)?;
    println!("layouts in {:.2?}", t.elapsed());
    for set in [&train, &test] {
        let t = Instant::now();
        set.write_folder(&out)?;
        let c = AreaCounts::of(set)?;
        println!(
            "{}: {} canvases, {} boxes, small {} medium {} large {} (written in {:.2?})",
            set.name(),
            set.len(),
            c.total,
            c.small,
            c.medium,
            c.large,
            t.elapsed()
        );
    }
    let items: Vec<GridItem> = (0..4.min(test.len()))
        .map(|index| GridItem {
            index,
            detections: Vec::new(),
        })
        .collect();
    draw_grid(&test, &items, 0.0, &out.join("grid.png"))?;
    Ok(())
}
