//! The binary's `pki` and `hub` commands and the `openssl` CLI, as the PKI tests run them.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary with `args`.
pub fn fleetbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(args)
        .output()
        .expect("fleetbench runs")
}

/// Runs `openssl` with `args`.
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed")
}

/// Asserts that the command succeeded; its standard output and error.
pub fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// A path as an argument.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Asserts that `openssl verify -CAfile ROOT -untrusted CHAIN CERT` says OK.
pub fn assert_openssl_verifies(root: &Path, chain: &Path, cert: &Path) {
    let out = ok(&openssl(&[
        "verify",
        "-CAfile",
        p(root),
        "-untrusted",
        p(chain),
        p(cert),
    ]));
    assert!(out.contains(": OK"), "{out}");
}

/// Asserts that the command was refused as bad input (exit 2, no panic); its standard error.
pub fn refused(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}
