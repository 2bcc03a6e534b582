//! Issue 16: a registry that loses nothing and refuses what IoT Hub refuses, a device added
//! while the hub serves accepted at once, and a device presenting its leaf alone told why.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use fleetbench::pki::store::write_ca_dir;
use fleetbench::pki::{CaChain, DeviceIds, IdTemplate, KeyType};

use crate::pki::{fleetbench, ok, p};
use crate::support;
use crate::support::hub_serve::HubServe;

/// Writes `server_ca`'s hub identity (for localhost) into `state`, as a user bringing their own.
fn write_identity(state: &Path, server_ca: &CaChain) {
    std::fs::create_dir_all(state).unwrap();
    let id = server_ca
        .mint_server(
            &["localhost".into(), "127.0.0.1".into()],
            KeyType::EcdsaP256,
        )
        .unwrap();
    let chain: Vec<&[u8]> = id.chain.iter().map(|c| c.as_ref()).collect();
    std::fs::write(
        state.join("server-root.pem"),
        support::pem("CERTIFICATE", &[server_ca.root().cert()]),
    )
    .unwrap();
    std::fs::write(
        state.join("server.pem"),
        support::pem("CERTIFICATE", &chain),
    )
    .unwrap();
    support::write_private(
        &state.join("server.key.pem"),
        &support::pem("PRIVATE KEY", &[id.key.secret_der()]),
    );
}

/// `hub serve` on `state` (with `args`), once it listens.
fn serve(state: &Path, args: &[&str]) -> HubServe {
    let mut cmd = HubServe::ephemeral(state);
    cmd.args(args).stderr(Stdio::piped());
    HubServe::start(cmd)
}

/// A registered, verified device CA in `dir/ca` and the hub state `dir/hub`.
fn setup(dir: &Path) -> (Arc<CaChain>, Arc<CaChain>) {
    let (devices, server) = (support::chain(), support::chain());
    write_ca_dir(&dir.join("ca"), &devices).unwrap();
    write_identity(&dir.join("hub"), &server);
    ok(&fleetbench(&[
        "hub",
        "ca",
        "add",
        "--state",
        p(&dir.join("hub")),
        "--name",
        "fleet",
        "--verified",
        "--cert",
        p(&dir.join("ca/root.cer")),
    ]));
    (devices, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_added_while_the_hub_serves_is_accepted_on_its_first_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (devices, server) = setup(dir.path());
    let state = dir.path().join("hub");
    let hub = serve(&state, &[]);
    let addr = hub.mqtt_addr();
    let plan = support::plan("[messages]\ncount = 1\n");
    let mut refused = Vec::new();
    for i in 1..=15 {
        let template = format!("added{i}-{{n}}");
        ok(&fleetbench(&[
            "hub",
            "device",
            "add",
            "--state",
            p(&state),
            "--count",
            "1",
            "--id",
            &template,
        ]));
        let ids = DeviceIds::new(IdTemplate::parse(&template).unwrap(), 1, 0, 1);
        let (rec, _) = support::fleet_at(&plan, addr, &server, devices.clone(), ids).await;
        if rec.snapshot().sessions_connected != 1 {
            refused.push((i, rec.failures()));
        }
    }
    hub.kill();
    assert!(
        refused.is_empty(),
        "refused at first connection: {refused:?}"
    );
}

#[test]
fn concurrent_writers_lose_no_device() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("hub");
    let writers: Vec<Child> = (0..6)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_fleetbench"))
                .args(["hub", "device", "add", "--state", p(&state), "--count"])
                .args(["2000", "--id", &format!("w{k}-{{n:05}}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = ok(&fleetbench(&[
        "hub",
        "device",
        "list",
        "--state",
        p(&state),
    ]));
    assert_eq!(listed.lines().count(), 12_000);
}

fn refused(args: &[&str], expect: &str) {
    let out = fleetbench(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(expect), "{args:?}: {err}");
}

#[test]
fn portal_commands_refuse_what_iot_hub_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, hub) = (dir.path().join("ca"), dir.path().join("hub"));
    let st = p(&hub);
    ok(&fleetbench(&["pki", "init", "--out", p(&ca)]));
    let root = p(&ca.join("root.cer")).to_owned();
    let add = |name: &str, cert: &str| -> Vec<String> {
        [
            "hub", "ca", "add", "--state", st, "--name", name, "--cert", cert,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let refused_add = |name: &str, cert: &str, expect: &str| {
        let args = add(name, cert);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), expect);
    };
    refused_add("", &root, "CA name \"\" is not valid");
    let args = add("fleet", &root);
    ok(&fleetbench(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    refused_add("again", &root, "already registered as CA \"fleet\"");
    ok(&fleetbench(&support::pki_devices(
        p(&ca),
        "1",
        p(&dir.path().join("d")),
    )));
    let leaf = p(&dir.path().join("d/device-00001.cert.pem")).to_owned();
    refused_add("leaf", &leaf, "not a CA certificate");

    let device = ["hub", "device", "add", "--state", st];
    refused(
        &[&device[..], &["--count", "0"]].concat(),
        "--count 0 is not valid",
    );
    refused(
        &[&device[..], &["--count", "1", "--id", "a b{n}"]].concat(),
        "' '",
    );
    refused(
        &[&device[..], &["--count", "1", "--id", "../{n}"]].concat(),
        "'/'",
    );
    let import = dir.path().join("import.txt");
    let line = |id: &str, mode: &str| {
        format!(
            "{{\"id\":{id},\"importMode\":\"{mode}\",\"status\":\"enabled\",\
             \"authentication\":{{\"type\":\"certificateAuthority\"}}}}\n"
        )
    };
    let import_args = [&device[..], &["--import", p(&import)]].concat();
    for (bad, expect) in [
        ("\"a\\u0000b\"", "'\\0' is not allowed"),
        ("\"a b\"", "' ' is not allowed"),
        ("\"../etc\"", "'/' is not allowed"),
    ] {
        std::fs::write(&import, line(bad, "create")).unwrap();
        refused(&import_args, expect);
    }
    let twice = format!("{}{}", line("\"d1\"", "create"), line("\"d1\"", "create"));
    std::fs::write(&import, twice).unwrap();
    refused(
        &import_args,
        "import.txt:2: device \"d1\" is already on line 1",
    );
    std::fs::write(&import, line("\"d1\"", "create")).unwrap();
    ok(&fleetbench(&import_args));
    refused(&import_args, "already registered");
    std::fs::write(&import, line("\"d1\"", "createOrUpdate")).unwrap();
    ok(&fleetbench(&import_args));

    let typo = dir.path().join("hbu");
    refused(
        &["hub", "device", "list", "--state", p(&typo)],
        "not a hub state directory",
    );
    refused(
        &["hub", "ca", "list", "--state", p(&typo)],
        "not a hub state directory",
    );
    assert!(!typo.exists(), "reading commands create nothing");
}

/// A device as Python makes it: TLS with `chain` and `key`, then an MQTT CONNECT; prints the
/// CONNACK code.
const PY_DEVICE: &str = r#"
import socket, ssl, sys
port, root, chain, key, device = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=root)
ctx.load_cert_chain(chain, key)
with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        def s(text):
            b = text.encode()
            return len(b).to_bytes(2, "big") + b
        body = s("MQTT") + bytes([4, 0x82, 0, 60]) + s(device) + s(f"localhost/{device}/?api-version=2021-04-12")
        tls.sendall(bytes([0x10, len(body)]) + body)
        connack = tls.recv(4)
        print("connack", connack[3] if len(connack) == 4 else connack)
"#;

#[test]
fn a_device_presenting_its_leaf_alone_is_told_the_chain_is_missing() {
    if !support::have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (state, out) = (dir.path().join("hub"), dir.path().join("devices"));
    ok(&fleetbench(&[
        "hub",
        "device",
        "add",
        "--state",
        p(&state),
        "--count",
        "1",
    ]));
    ok(&fleetbench(&support::pki_devices(
        p(&dir.path().join("ca")),
        "1",
        p(&out),
    )));
    let hub = serve(&state, &["-vv"]);
    let addr = hub.mqtt_addr();
    let device = |file: &str| {
        let out = Command::new("python3")
            .arg("-c")
            .arg(PY_DEVICE)
            .args([&addr.port().to_string(), p(&state.join("server-root.pem"))])
            .args([
                p(&out.join(file)),
                p(&out.join("device-00001.key.pem")),
                "device-00001",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let leaf_alone = device("device-00001.cert.pem");
    let with_chain = device("device-00001.chain.pem");
    let log = hub.kill_with_log();
    assert_eq!(with_chain.trim(), "connack 0");
    assert_eq!(leaf_alone.trim(), "connack 5", "{log}");
    assert!(
        log.contains("presented 1 certificate: the chain to a registered CA is missing; present the device chain file"),
        "{log}"
    );
}
