//! Minting benchmark: device certificates per second per core for each key type, against a bare
//! rcgen loop (key generation + signing, nothing else) measured in the same run; the speed-up
//! on all cores; and one `openssl req` + `openssl x509` pair per device.
//!
//! `cargo bench --bench pki` (plain timing, no harness). Rounds alternate between the two loops
//! (one core, bare rcgen, all cores) and the best of each is kept, so a busy neighbour on the
//! machine hurts all three alike.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use fleetbench::pki::store::write_ca_dir;
use fleetbench::pki::{CaChain, ChainSpec, KeyType, Validity};
use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer};

const ROUNDS: usize = 3;
/// Time spent on each loop per round.
const BUDGET: Duration = Duration::from_millis(700);

/// Runs `f` until `BUDGET` passes (at least twice); returns items per second.
fn rate(mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while n < 2 || start.elapsed() < BUDGET {
        f(n);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `cores` threads minting with `chain` for `BUDGET`; devices per second, all threads together.
fn all_cores(chain: &CaChain, key_type: KeyType, validity: Validity, cores: usize) -> f64 {
    let start = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while n < 2 || start.elapsed() < BUDGET {
                        chain
                            .mint_device(&format!("device-{n:05}"), key_type, validity)
                            .unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("minting device certificates, {cores} cores, best of {ROUNDS} rounds of {BUDGET:?}");
    println!(
        "{:<12} {:>14} {:>14} {:>7} {:>16} {:>9}",
        "key type",
        "fleetbench/s",
        "bare rcgen/s",
        "ratio",
        format!("{cores} threads/s"),
        "speed-up"
    );
    let validity = Validity::default();
    let mut p256 = 0.0;
    for key_type in KeyType::ALL {
        let chain = CaChain::generate(&ChainSpec {
            key_type: KeyType::EcdsaP256,
            ..ChainSpec::default()
        })
        .unwrap();
        let issuer = Issuer::from_ca_cert_der(
            chain.issuing().cert(),
            rcgen::KeyPair::try_from(chain.issuing().key().serialize_der()).unwrap(),
        )
        .unwrap();
        let (mut ours, mut bare, mut parallel) = (0.0_f64, 0.0_f64, 0.0_f64);
        for _ in 0..ROUNDS {
            ours = ours.max(rate(|n| {
                chain
                    .mint_device(&format!("device-{n:05}"), key_type, validity)
                    .unwrap();
            }));
            bare = bare.max(rate(|n| {
                let key = key_type.generate().unwrap();
                let mut params = CertificateParams::default();
                let mut dn = DistinguishedName::new();
                dn.push(DnType::CommonName, format!("device-{n:05}"));
                params.distinguished_name = dn;
                params.signed_by(&key, &issuer).unwrap();
            }));
            parallel = parallel.max(all_cores(&chain, key_type, validity, cores));
        }
        if key_type == KeyType::EcdsaP256 {
            p256 = ours;
        }
        println!(
            "{:<12} {:>14.1} {:>14.1} {:>7.3} {:>16.1} {:>8.2}x",
            key_type.name(),
            ours,
            bare,
            ours / bare,
            parallel,
            parallel / ours
        );
    }
    openssl_pairs(p256);
}

/// One `openssl req` (new P-256 key + CSR) and one `openssl x509 -req` (signing) per device.
fn openssl_pairs(fleetbench_per_core: f64) {
    const PAIRS: u32 = 20;
    let dir = tempfile::tempdir().unwrap();
    let chain = CaChain::generate(&ChainSpec {
        intermediates: 0,
        ..ChainSpec::default()
    })
    .unwrap();
    write_ca_dir(&dir.path().join("ca"), &chain).unwrap();
    let path = |s: &str| dir.path().join(s).to_str().unwrap().to_owned();
    let start = Instant::now();
    for n in 0..PAIRS {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl installed");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (key, csr, crt) = (
            path(&format!("d{n}.key")),
            path(&format!("d{n}.csr")),
            path(&format!("d{n}.crt")),
        );
        run(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            &format!("/CN=device-{n:05}"),
            "-out",
            &csr,
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &path("ca/root.cert.pem"),
            "-CAkey",
            &path("ca/root.key.pem"),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &crt,
        ]);
    }
    let per_s = f64::from(PAIRS) / start.elapsed().as_secs_f64();
    println!("openssl req + x509 per device (P-256, {PAIRS} pairs): {per_s:.1}/s; fleetbench on one core is {:.0}x faster", fleetbench_per_core / per_s);
}
