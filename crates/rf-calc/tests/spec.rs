//! The spec format: parsing, errors that name the layer, and every preset written out and read
//! back to the same receptive fields.

use rf_calc::spec::{parse, to_string, Format};
use rf_calc::{analyze, presets, Frac, Options, RfError};

const TINY: &str = r#"
name = "tiny"
input = "image"
endpoints = ["sum", "pool"]

[[layer]]
name = "c1"
op = "conv"
kernel = 3
stride = 2
padding = 1

[[layer]]
name = "c2"
op = "conv"
input = "image"
kernel = [1, 7]
stride = 2
padding = { top = 0, bottom = 0, left = 3, right = 3 }

[[layer]]
name = "sum"
op = "add"
inputs = ["c1", "c2"]

[[layer]]
name = "relu"
op = "relu"

[[layer]]
name = "pool"
op = "max_pool"
kernel = 2
"#;

#[test]
fn toml_spec_reads_and_analyses() {
    let g = parse(TINY, Format::Toml, "x").unwrap();
    assert_eq!(g.name(), "tiny");
    assert_eq!(g.nodes()[0].name, "image");
    let a = analyze(&g, Options::input([32, 32])).unwrap();
    let sum = a.node("sum").unwrap();
    // Height: max(3, 1) = 3; width: max(3, 7) = 7; both branches centred on the same pixel.
    assert_eq!((sum.rf[0].size, sum.rf[1].size), (3, 7));
    let pool = a.node("pool").unwrap();
    assert_eq!(pool.rf[1].stride, Frac::int(4));
    assert_eq!(pool.rf[1].size, 9);
    assert_eq!(a.endpoints, vec!["sum", "pool"]);
}

fn err(text: &str) -> String {
    let full =
        format!("[[layer]]\nname = \"first\"\nop = \"conv\"\nkernel = 3\npadding = 1\n{text}");
    match parse(&full, Format::Toml, "t").and_then(|g| analyze(&g, Options::input([16, 16]))) {
        Ok(_) => panic!("accepted:\n{full}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_specs_name_the_layer() {
    let e = err("[[layer]]\nname = \"bad\"\nop = \"convv\"\nkernel = 3\n");
    assert!(
        e.contains("`bad`") && e.contains("`convv`") && e.contains("depthwise_conv"),
        "{e}"
    );
    let e = err("[[layer]]\nname = \"neg\"\nop = \"conv\"\nkernel = 3\nstride = -2\n");
    assert!(
        e.contains("`neg`") && e.contains("stride must be >= 1"),
        "{e}"
    );
    let e = err("[[layer]]\nname = \"typo\"\nop = \"conv\"\nkernel = 3\nstrid = 2\n");
    assert!(e.contains("`typo`") && e.contains("`strid`"), "{e}");
    let e = err("[[layer]]\nname = \"orphan\"\nop = \"conv\"\nkernel = 3\ninput = \"nowhere\"\n");
    assert!(e.contains("`orphan`") && e.contains("`nowhere`"), "{e}");
    let e = err("[[layer]]\nname = \"first\"\nop = \"identity\"\n");
    assert!(e.contains("`first`") && e.contains("twice"), "{e}");
    let e = err("[[layer]]\nname = \"p\"\nop = \"conv\"\nkernel = 3\npadding = \"full\"\n");
    assert!(e.contains("`p`") && e.contains("padding"), "{e}");
    // A 3x3 branch padded at the end only beside one padded evenly: same size, centres 1
    // pixel apart.
    let e = err(
        "[[layer]]\nname = \"v\"\nop = \"conv\"\nkernel = 3\ninput = \"input\"\n\
         padding = { top = 0, bottom = 2, left = 0, right = 2 }\n\
         [[layer]]\nname = \"merge\"\nop = \"add\"\ninputs = [\"first\", \"v\"]\n",
    );
    assert!(e.contains("`merge`") && e.contains("not aligned"), "{e}");
    let e = err(
        "[[layer]]\nname = \"down\"\nop = \"conv\"\nkernel = 1\nstride = 2\ninput = \"input\"\n\
         [[layer]]\nname = \"cat\"\nop = \"concat\"\ninputs = [\"first\", \"down\"]\n",
    );
    assert!(e.contains("`cat`") && e.contains("sizes"), "{e}");
    let e = match parse("[[layer]]\nname = 3", Format::Toml, "t") {
        Err(RfError::InvalidLayer { layer, .. }) => layer,
        other => panic!("{other:?}"),
    };
    assert_eq!(e, "#1");
}

#[test]
fn json_spec_reads() {
    let j = r#"{"layers": [{"name": "a", "op": "conv", "kernel": 5, "dilation": 2, "padding": 4},
                          {"name": "b", "op": "avg_pool", "kernel": 2}]}"#;
    let g = parse(j, Format::Json, "j").unwrap();
    assert_eq!(g.name(), "j");
    let a = analyze(&g, Options::default()).unwrap();
    let b = a.node("b").unwrap();
    assert_eq!((b.rf[0].size, b.rf[0].padding), (10, Some(4)));
}

#[test]
fn every_preset_survives_a_round_trip() {
    for p in presets::all() {
        let g = p.build().unwrap();
        for format in [Format::Toml, Format::Json] {
            let text = to_string(&g, format).unwrap();
            let back = parse(&text, format, "x").unwrap();
            assert_eq!(back, g, "{} via {format:?}", p.name);
        }
    }
    let g = presets::by_name("inception_v3").unwrap();
    let a = analyze(&g, Options::input([299, 299])).unwrap();
    let back = parse(&to_string(&g, Format::Toml).unwrap(), Format::Toml, "x").unwrap();
    let b = analyze(&back, Options::input([299, 299])).unwrap();
    assert_eq!(
        a.node("Mixed_7c").unwrap().rf,
        b.node("Mixed_7c").unwrap().rf
    );
}

/// The message of a spec the reader rejects, with the layer it names.
fn read_err(text: &str, format: Format) -> (String, String) {
    match parse(text, format, "t") {
        Err(RfError::InvalidLayer { layer, message }) => (layer, message),
        other => panic!("expected a layer error, got {other:?}"),
    }
}

const TWO: &str = "[[layer]]\nname = \"a\"\nop = \"conv\"\nkernel = 3\n\n[[layer]]\nname = \"b\"\nop = \"conv\"\n";

#[test]
fn a_wrong_field_name_is_named_with_its_line_and_column() {
    let (layer, m) = read_err(&format!("{TWO}kernel = 3\nstrid = 2\n"), Format::Toml);
    assert_eq!(layer, "b");
    assert!(
        m.contains("unknown field `strid`") && m.contains("`stride`"),
        "{m}"
    );
    assert!(m.ends_with("at line 10 column 1"), "{m}");
    let j = "{\"layer\": [\n  {\"name\": \"a\", \"op\": \"conv\", \"kernel\": 3},\n  {\"name\": \"b\", \"op\": \"conv\", \"strid\": 2}\n]}";
    let (layer, m) = read_err(j, Format::Json);
    assert_eq!(layer, "b");
    assert!(
        m.contains("unknown field `strid`") && m.contains("at line 3 column"),
        "{m}"
    );
    // A field of another op.
    let (layer, m) = read_err(
        &format!("{TWO}kernel = 3\nceil_mode = true\n"),
        Format::Toml,
    );
    assert_eq!(layer, "b");
    assert!(
        m.contains("`ceil_mode` for conv") && m.contains("it takes: kernel"),
        "{m}"
    );
}

#[test]
fn a_wrong_type_is_named_with_its_line_and_column() {
    let (layer, m) = read_err(&format!("{TWO}kernel = \"3\"\n"), Format::Toml);
    assert_eq!(layer, "b");
    assert!(
        m.contains("invalid type: string \"3\", expected an integer or [h, w]"),
        "{m}"
    );
    assert!(m.ends_with("at line 9 column 10"), "{m}");
    let (_, m) = read_err(&format!("{TWO}kernel = 3\nceil_mode = 1\n"), Format::Toml);
    assert!(
        m.contains("invalid type: integer `1`, expected a boolean"),
        "{m}"
    );
    let (_, m) = read_err(
        &format!("{TWO}kernel = 3\npadding = {{ top = 1 }}\n"),
        Format::Toml,
    );
    assert!(m.contains("missing field `bottom`"), "{m}");
    let j = "{\"layers\": [{\"name\": \"a\", \"op\": \"conv\",\n  \"kernel\": 3, \"channels\": \"many\"}]}";
    let (layer, m) = read_err(j, Format::Json);
    assert_eq!(layer, "a");
    assert!(
        m.contains("invalid type: string \"many\"") && m.contains("at line 2 column"),
        "{m}"
    );
    // Outside the layers: a spec error, still placed.
    match parse("nam = \"x\"\n[[layer]]\nop = \"add\"\n", Format::Toml, "t") {
        Err(RfError::Spec(m)) => assert!(
            m.contains("`nam`") && m.contains("at line 1 column 1"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_int_or_pair_is_named() {
    for (value, says) in [
        ("[3]", "invalid length 1, expected an integer or [h, w]"),
        (
            "[3, 3, 3]",
            "invalid length 3, expected an integer or [h, w]",
        ),
        (
            "2.5",
            "invalid type: floating point `2.5`, expected an integer or [h, w]",
        ),
        ("[3, \"x\"]", "invalid type: string \"x\""),
    ] {
        let (layer, m) = read_err(&format!("{TWO}kernel = {value}\n"), Format::Toml);
        assert_eq!(layer, "b");
        assert!(
            m.contains(says) && m.contains("at line 9 column"),
            "{value}: {m}"
        );
    }
    let (_, m) = read_err(
        &format!("{TWO}kernel = 3\npadding = \"full\"\n"),
        Format::Toml,
    );
    assert!(
        m.contains("\"full\"") && m.contains("expected a padding"),
        "{m}"
    );
    // Both forms read to the same layer.
    let a = parse(
        "[[layer]]\nop = \"conv\"\nkernel = 3\nstride = [2, 2]\n",
        Format::Toml,
        "t",
    )
    .unwrap();
    let b = parse(
        "[[layer]]\nop = \"conv\"\nkernel = [3, 3]\nstride = 2\n",
        Format::Toml,
        "t",
    )
    .unwrap();
    assert_eq!(a.nodes()[1], b.nodes()[1]);
}
