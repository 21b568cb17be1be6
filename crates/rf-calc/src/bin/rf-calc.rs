//! `rf-calc`: receptive fields of a preset or of one's own network spec.
//!
//! ```text
//! rf-calc vgg_16                              # end-points, input size unknown
//! rf-calc resnet_v1_50 --input 224 --all      # every layer at 224x224
//! rf-calc --spec net.toml --input 224 --format markdown
//! rf-calc resnet50 --input 224 --draw rf.png --node layer4 --units 3,3 0,0 [--image photo.jpg]
//! rf-calc inception_v3 --emit-spec toml > inception_v3.toml
//! ```
//!
//! Output goes through `cvlab_util::pipe`: `rf-calc ... | head` ends quietly with status 0.

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use cvlab_util::pipe::{out, outln};
use std::path::PathBuf;

use rf_calc::render::{self, Rows};
use rf_calc::spec::{self, Format};
use rf_calc::{analyze, draw, presets, Graph, Options, Pair};

#[derive(Clone, Copy, ValueEnum)]
enum Out {
    Table,
    Markdown,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum SpecFormat {
    Toml,
    Json,
}

#[derive(Parser)]
#[command(
    name = "rf-calc",
    version,
    about = "Receptive field size, effective stride and padding of CNNs (Araujo et al. 2019)"
)]
struct Cli {
    /// A preset (see --list).
    preset: Option<String>,
    /// A TOML or JSON spec of one's own network instead of a preset.
    #[arg(long, conflicts_with = "preset")]
    spec: Option<PathBuf>,
    /// Input size: N or HxW. SAME padding depends on it; without it some paddings are None.
    #[arg(long)]
    input: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Out,
    /// Show every layer, not only the end-points.
    #[arg(long)]
    all: bool,
    /// Show (or draw) these layers.
    #[arg(long)]
    node: Vec<String>,
    /// List the presets and exit.
    #[arg(long)]
    list: bool,
    /// Report merges whose paths disagree on the centre instead of rejecting them.
    #[arg(long, conflicts_with = "strict")]
    allow_unaligned: bool,
    /// Reject misaligned merges even where the graph allows them (FPN).
    #[arg(long)]
    strict: bool,
    /// Print the network as a spec (to edit and read back with --spec) and exit.
    #[arg(long, value_enum)]
    emit_spec: Option<SpecFormat>,
    /// Draw the receptive fields of --units of the (first) --node into this PNG.
    #[arg(long)]
    draw: Option<PathBuf>,
    /// Units to draw, as ROW,COL (default: the centre unit).
    #[arg(long, num_args = 1..)]
    units: Vec<String>,
    /// Image to draw over (its size is the input size); a checkerboard otherwise.
    #[arg(long, requires = "draw")]
    image: Option<PathBuf>,
    /// Empirical receptive field (Luo et al. 2016) of the centre unit of the (first) --node over
    /// random inits and inputs, as a heat map PNG with the theoretical field (feature `erf`).
    #[cfg(feature = "erf")]
    #[arg(long)]
    erf: Option<PathBuf>,
    /// Random initialisations (x 8 random inputs each) for --erf.
    #[cfg(feature = "erf")]
    #[arg(long, default_value_t = 8)]
    erf_inits: usize,
    /// Channels of every convolution of the net built for --erf.
    #[cfg(feature = "erf")]
    #[arg(long, default_value_t = 32)]
    erf_width: i64,
}

#[cfg(feature = "erf")]
fn erf(cli: &Cli, graph: &Graph, node: &str, input: Pair) -> Result<()> {
    use rf_calc::erf::{random_erf, ErfConfig, NetConfig};
    let Some(out) = &cli.erf else { return Ok(()) };
    let cfg = ErfConfig {
        inits: cli.erf_inits,
        net: NetConfig {
            width: cli.erf_width,
            ..NetConfig::default()
        },
        ..ErfConfig::default()
    };
    let e = random_erf(graph, node, input, &cfg)?;
    let title = format!(
        "{node}{:?}: effective {:.1}x{:.1} of theoretical {}x{}",
        e.unit, e.stats.h.size, e.stats.w.size, e.theoretical_size[0], e.theoretical_size[1]
    );
    outln(&format!(
        "{title} (Gaussian R^2 {:.3}/{:.3})",
        e.stats.h.gaussian_r2, e.stats.w.gaussian_r2
    ))?;
    let panel = draw::HeatPanel {
        title,
        map: &e.map,
        boxes: vec![("theoretical".to_owned(), draw::pixel_box(e.theoretical))],
    };
    draw::heatmap_png(out, &[panel])?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn parse_hw(s: &str) -> Result<Pair> {
    let parse = |t: &str| {
        t.trim()
            .parse::<i64>()
            .with_context(|| format!("bad size `{s}`: expected N or HxW"))
    };
    let p = match s.split_once(['x', 'X']) {
        Some((h, w)) => [parse(h)?, parse(w)?],
        None => {
            let n = parse(s)?;
            [n, n]
        }
    };
    if p[0] < 1 || p[1] < 1 {
        bail!("input size must be positive, got {s}");
    }
    Ok(p)
}

fn parse_unit(s: &str) -> Result<Pair> {
    let (r, c) = s
        .split_once(',')
        .with_context(|| format!("unit `{s}`: expected ROW,COL"))?;
    Ok([
        r.trim().parse().context("unit row")?,
        c.trim().parse().context("unit column")?,
    ])
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.list {
        let list: String = presets::all()
            .iter()
            .map(|p| format!("{:<32} {}\n", p.name, p.source))
            .collect();
        out(&list)?;
        return Ok(());
    }
    let graph: Graph = match (&cli.preset, &cli.spec) {
        (Some(name), None) => presets::by_name(name)?,
        (None, Some(path)) => {
            spec::from_path(path).with_context(|| format!("reading {}", path.display()))?
        }
        _ => bail!("give a preset name or --spec FILE (see --list)"),
    };
    if let Some(f) = cli.emit_spec {
        let f = match f {
            SpecFormat::Toml => Format::Toml,
            SpecFormat::Json => Format::Json,
        };
        out(&spec::to_string(&graph, f)?)?;
        return Ok(());
    }
    let image = match &cli.image {
        Some(p) => Some(
            image::open(p)
                .with_context(|| format!("opening {}", p.display()))?
                .to_rgb8(),
        ),
        None => None,
    };
    let mut input = cli.input.as_deref().map(parse_hw).transpose()?;
    if let Some(img) = &image {
        let size = [i64::from(img.height()), i64::from(img.width())];
        if input.is_some_and(|i| i != size) {
            bail!(
                "--input {:?} differs from the image's size {size:?}",
                input.unwrap_or_default()
            );
        }
        input = Some(size);
    }
    let strict = if cli.strict {
        Some(true)
    } else if cli.allow_unaligned {
        Some(false)
    } else {
        None
    };
    let mut a = analyze(&graph, Options { input, strict })?;
    if !cli.node.is_empty() {
        for n in &cli.node {
            a.node(n)?;
        }
        a.endpoints = cli.node.clone();
    }
    let rows = if cli.all { Rows::All } else { Rows::Endpoints };
    match cli.format {
        Out::Table => out(&render::table(&a, rows))?,
        Out::Markdown => out(&render::markdown(&a, rows))?,
        Out::Json => outln(&render::json(&a, rows)?)?,
    }
    if let Some(out) = &cli.draw {
        let Some(size) = input else {
            bail!("--draw needs --input or --image (the drawing is in input pixels)");
        };
        let name = cli
            .node
            .first()
            .cloned()
            .or_else(|| a.endpoints.last().cloned())
            .context("no layer to draw")?;
        let node = a.node(&name)?;
        let units = if cli.units.is_empty() {
            let centre = |i: usize| node.geom[i].out_size.map_or(0, |n| (n - 1) / 2);
            vec![[centre(0), centre(1)]]
        } else {
            cli.units
                .iter()
                .map(|u| parse_unit(u))
                .collect::<Result<Vec<_>>>()?
        };
        let canvas = image.unwrap_or_else(|| draw::checkerboard(size));
        draw::units_png(out, &canvas, node, &units)?;
        eprintln!("wrote {}", out.display());
    }
    #[cfg(feature = "erf")]
    if cli.erf.is_some() {
        let Some(size) = input else {
            bail!("--erf needs --input (the net is built for one input size)");
        };
        let name = cli
            .node
            .first()
            .cloned()
            .or_else(|| a.endpoints.last().cloned())
            .context("no layer")?;
        erf(&cli, &graph, &name, size)?;
    }
    Ok(())
}
