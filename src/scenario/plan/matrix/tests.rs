use crate::scenario::test_plan as plan;

fn labels(toml: &str) -> (Vec<String>, Vec<(String, String)>) {
    let m = plan(toml).unwrap().matrix.unwrap();
    (
        m.cells.iter().map(|c| c.label.clone()).collect(),
        m.skipped
            .iter()
            .map(|c| (c.label.clone(), c.reason.clone()))
            .collect(),
    )
}

const BASE: &str =
    "[fleet]\ndevices = 2\n[connect]\nrate = 50\n[churn]\nduration = \"1s\"\nmessages = 0\n";

#[test]
fn the_product_less_what_cannot_work_each_cell_a_plan_of_its_own() {
    let toml = format!("{BASE}[matrix]\ngroup = [\"x25519\", \"X25519MLKEM768\"]\nprovider = [\"ring\", \"aws-lc-rs\"]\n");
    let (cells, skipped) = labels(&toml);
    assert_eq!(
        cells,
        [
            "x25519_ring",
            "x25519_aws-lc-rs",
            "X25519MLKEM768_aws-lc-rs"
        ]
    );
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, "X25519MLKEM768_ring");
    assert!(
        skipped[0]
            .1
            .contains("ring has no key-exchange group X25519MLKEM768"),
        "{skipped:?}"
    );
    let m = plan(&toml).unwrap().matrix.unwrap();
    let pq = &m.cells[2].plan;
    assert_eq!(pq.tls.groups, ["X25519MLKEM768"]);
    assert_eq!(pq.tls.provider.name(), "aws-lc-rs");
    assert_eq!(pq.tls.hub.provider.name(), "aws-lc-rs");
    assert!(pq.matrix.is_none());
    assert_eq!(m.rounds, 3);
    assert_eq!(m.round_order(1), [0, 1, 2]);
    assert_eq!(m.round_order(2), [2, 1, 0]);
}

#[test]
fn a_bad_value_is_named_by_its_index_at_its_line() {
    let e = plan(&format!(
        "{BASE}[matrix]\ngroup = [\n  \"x25519\",\n  \"x448\",\n]\n"
    ))
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "matrix.group[1]");
    assert_eq!(e.0[0].line, Some(11));
    assert!(
        e.to_string()
            .contains("t.toml:11:3: matrix.group[1]: \"x448\" is not a key-exchange group"),
        "{e}"
    );
    let e = plan(&format!(
        "{BASE}[matrix]\nkey-type = [\"ed25519\", \"dsa\", \"ed25519\"]\n"
    ))
    .unwrap_err();
    let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["matrix.key-type[1]", "matrix.key-type[2]"], "{e}");
    assert!(e.to_string().contains("ed25519 is listed twice"), "{e}");
}

#[test]
fn exclude_and_include_shape_the_cells() {
    let toml = format!(
        "{BASE}[matrix]\nrounds = 1\nversion = [\"1.2\", \"1.3\"]\nresumption = [false, true]\n\
         exclude = [{{ version = \"1.2\", resumption = true }}]\n\
         include = [{{ label = \"pq\", provider = \"aws-lc-rs\", key-type = \"ml-dsa-44\" }}]\n"
    );
    let (cells, skipped) = labels(&toml);
    assert_eq!(
        cells,
        [
            "tls1.2_no-resume",
            "tls1.3_no-resume",
            "tls1.3_resume",
            "pq",
        ]
    );
    assert_eq!(
        skipped,
        [(
            "tls1.2_resume".to_owned(),
            "excluded by matrix.exclude[0]".to_owned()
        )]
    );
    let e = plan(&format!(
        "{BASE}[matrix]\nexclude = [{{ provider = \"boring\" }}]\ngroup = [\"x25519\"]\n"
    ))
    .unwrap_err();
    assert_eq!(e.0[0].field, "matrix.exclude[0].provider", "{e}");
    assert_eq!(e.0[0].line, Some(9), "{e}");
}

#[test]
fn a_cell_that_fails_validation_is_named() {
    let toml = format!("{BASE}[tls]\ncipher-suites = [\"TLS13_AES_128_GCM_SHA256\"]\n[matrix]\nversion = [\"1.3\", \"1.2\"]\n");
    let e = plan(&toml).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "tls.cipher-suites");
    assert!(e.0[0].message.starts_with("in matrix cell tls1.2: "), "{e}");
}

#[test]
fn empty_huge_and_pointless_matrices_are_refused() {
    let e = plan(&format!("{BASE}[matrix]\nrounds = 2\n")).unwrap_err();
    assert!(e.to_string().contains("matrix: names no cell"), "{e}");
    let e = plan(&format!("{BASE}[matrix]\ngroup = []\n")).unwrap_err();
    assert!(e.to_string().contains("matrix.group: is empty"), "{e}");
    let e = plan(&format!(
        "{BASE}[matrix]\nkey-type = [\"ecdsa-p256\", \"ecdsa-p384\", \"ed25519\", \"rsa-2048\"]\n\
         ca-key-type = [\"ecdsa-p256\", \"ecdsa-p384\", \"ed25519\", \"rsa-2048\"]\n\
         intermediates = [0, 1, 2, 3, 4]\n"
    ))
    .unwrap_err();
    assert!(e.to_string().contains("makes 80 cells, at most 64"), "{e}");
    let e = plan(&format!("{BASE}[matrix]\ngroup = [\"X25519MLKEM768\"]\n")).unwrap_err();
    assert!(e.to_string().contains("leaves no cell to run"), "{e}");
}
