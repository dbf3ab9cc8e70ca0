//! Pipeline files: bad ones fail with exactly the message a user needs,
//! and `tributary run` itself is tested in the `tributary` package (it
//! needs the binary).

use std::path::Path;

/// The environment the corpus sees: `PW` holds a secret.
fn env(name: &str) -> Option<String> {
    (name == "PW").then(|| "hunter2".to_string())
}

/// Every `tests/pipelines/bad/NAME.yaml` fails with the one line in
/// `NAME.err`. (`TRIBUTARY_BLESS=1` writes missing `.err` files from the
/// current output, to be read and checked by a person before committing.)
#[test]
fn bad_pipelines_fail_with_exact_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "the corpus is there");
    let mut failures = Vec::new();
    for path in files {
        let name = path.file_name().expect("name");
        let text = std::fs::read_to_string(&path).expect("read");
        let got = match tributary_pipeline::parse(Path::new(name), &text, &env) {
            Ok(_) => "(no error)".to_string(),
            Err(e) => e.to_string(),
        };
        assert!(!got.contains("hunter2"), "a secret in {got}");
        let err_file = path.with_extension("err");
        let want = match std::fs::read_to_string(&err_file) {
            Ok(w) => w.trim_end().to_string(),
            Err(_) if std::env::var_os("TRIBUTARY_BLESS").is_some() => {
                std::fs::write(&err_file, format!("{got}\n")).expect("bless");
                got.clone()
            }
            Err(e) => panic!("{}: {e}", err_file.display()),
        };
        if got != want {
            failures.push(format!("{}\n  want: {want}\n  got:  {got}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The examples parse.
#[test]
fn examples_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("examples") {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            tributary_pipeline::load(&path, &|_| None).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1);
}
