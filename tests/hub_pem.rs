//! Issue 14: `hub serve` with a broken `server.pem` (or key) names the file and says what is
//! wrong in words, as `run` does for a device's PEM files, never the parser's byte arrays.

use std::path::{Path, PathBuf};

use crate::pki::{fleetbench, ok, p};

/// `hub serve` on `state`, which must refuse to start: its stderr.
fn serve_refused(state: &Path) -> String {
    let out = fleetbench(&["hub", "serve", "--mqtt", "127.0.0.1:0", "--state", p(state)]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("[67, 69"), "bytes, not words: {err}");
    err
}

fn init(dir: &Path, name: &str) -> PathBuf {
    let state = dir.join(name);
    ok(&fleetbench(&["hub", "init", "--state", p(&state)]));
    state
}

/// The file cut short half-way, as an interrupted copy leaves it.
fn truncate(path: &Path) {
    let pem = std::fs::read(path).unwrap();
    std::fs::write(path, &pem[..pem.len() / 2]).unwrap();
}

#[test]
fn hub_serve_names_a_broken_server_pem_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();

    let cut = init(dir.path(), "cut");
    truncate(&cut.join("server.pem"));
    let err = serve_refused(&cut);
    let file = cut.join("server.pem");
    assert!(
        err.contains(&format!(
            "{} is not a valid server certificate chain: the CERTIFICATE section has no END line \
             (is the file cut short?)",
            file.display()
        )),
        "{err}"
    );

    let text = init(dir.path(), "text");
    std::fs::write(text.join("server.pem"), "hello, not a certificate\n").unwrap();
    let err = serve_refused(&text);
    assert!(
        err.contains("server.pem is not a valid server certificate chain: it holds no PEM"),
        "{err}"
    );

    let key_cut = init(dir.path(), "key-cut");
    truncate(&key_cut.join("server.key.pem"));
    let err = serve_refused(&key_cut);
    assert!(
        err.contains(
            "server.key.pem is not a valid private key: the PRIVATE KEY section has no END line"
        ),
        "{err}"
    );

    // A server.pem from another identity: its key is not this one.
    let other = init(dir.path(), "other");
    let mixed = init(dir.path(), "mixed");
    std::fs::copy(other.join("server.pem"), mixed.join("server.pem")).unwrap();
    let err = serve_refused(&mixed);
    assert!(
        err.contains("server.key.pem: this key is not the one of the certificate in server.pem"),
        "{err}"
    );
}
