//! `fleetbench pki …`: the tutorial's certificate steps, one command each.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::cli::{
    PkiCommand, PkiDevicesArgs, PkiInitArgs, PkiProveArgs, PkiRegistryArgs, PkiServerArgs,
};
use crate::pki::export::{
    check_code, thumbprints, DeviceExport, ImportAuth, ImportDevice, Thumbprints, X509Thumbprint,
};
use crate::pki::store::{
    level_name, load_ca_dir, pem, refuse_existing, write_ca_dir_with, write_private, write_public,
};
use crate::pki::{CaChain, ChainSpec, DeviceIds, IdTemplate, KeyType, ServerNames, Validity};
use crate::Outcome;

/// Runs a `pki` subcommand.
pub(super) fn command(cmd: PkiCommand) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let text = match cmd {
        PkiCommand::Init(args) => init(&args)?,
        PkiCommand::Prove(args) => prove(&args)?,
        PkiCommand::Devices(args) => devices(&args)?,
        PkiCommand::Registry(args) => registry(&args)?,
        PkiCommand::Server(args) => server(&args)?,
    };
    super::write_or_broken_pipe(out.write_all(text.as_bytes()))?;
    Ok(Outcome::Success)
}

fn init(args: &PkiInitArgs) -> anyhow::Result<String> {
    let spec = ChainSpec {
        key_type: args.key_type,
        intermediates: args.intermediates,
        validity: Validity::days_from_now(args.days),
        name: args.name.clone(),
    };
    let chain = CaChain::generate(&spec).context("minting the CA chain")?;
    let files = write_ca_dir_with(&args.out, &chain, args.force)?;
    let mut text = format!(
        "CA chain ({}, {} intermediates) in {}\n",
        args.key_type,
        args.intermediates,
        args.out.display()
    );
    for (level, ca) in chain.authorities().iter().enumerate() {
        let t = Thumbprints::of(ca.cert());
        text.push_str(&format!(
            "  {:<16} {:<40} sha1 {}\n",
            level_name(level),
            ca.common_name(),
            t.sha1
        ));
    }
    text.push_str(&format!(
        "{} files; upload {} to the hub\n",
        files.len(),
        args.out.join("root.cer").display()
    ));
    Ok(text)
}

fn prove(args: &PkiProveArgs) -> anyhow::Result<String> {
    check_code(&args.code)?;
    let chain = load_ca_dir(&args.ca)?;
    let level = (0..chain.authorities().len())
        .find(|l| level_name(*l) == args.signer)
        .with_context(|| {
            let names: Vec<_> = (0..chain.authorities().len()).map(level_name).collect();
            format!(
                "--signer {:?} is not in {}: expected one of {}",
                args.signer,
                args.ca.display(),
                names.join(", ")
            )
        })?;
    let cert =
        CaChain::mint_verification(&chain.authorities()[level], &args.code, KeyType::EcdsaP256)
            .context("minting the verification certificate")?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.ca.join("verification-code.cert.pem"));
    if !args.force {
        refuse_existing(std::slice::from_ref(&out))?;
    }
    write_public(&out, pem("CERTIFICATE", &cert).as_bytes())?;
    Ok(format!(
        "verification certificate (CN={}, signed by {}) in {}\n",
        args.code,
        level_name(level),
        out.display()
    ))
}

fn devices(args: &PkiDevicesArgs) -> anyhow::Result<String> {
    let ids = device_ids(&args.id, args.count)?;
    let ca = args
        .ca
        .as_deref()
        .map(load_ca_dir)
        .transpose()?
        .map(Arc::new);
    let export = DeviceExport {
        dir: args.out.clone(),
        ca,
        key_type: args.key_type,
        validity: Validity::days_from_now(args.days),
        pfx_password: args.pfx_password.clone(),
    };
    if !args.force {
        refuse_existing(&export.existing_files(&ids)?)?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let thumbprints = export
        .run(&ids, workers)
        .with_context(|| format!("exporting devices to {}", args.out.display()))?;
    let elapsed = start.elapsed();
    let csv: String = std::iter::once("id,sha1,sha256\n".to_owned())
        .chain(
            thumbprints
                .iter()
                .map(|(id, t)| format!("{id},{},{}\n", t.sha1, t.sha256)),
        )
        .collect();
    let csv_path = args.out.join("thumbprints.csv");
    write_public(&csv_path, csv.as_bytes())?;
    let mut text = format!(
        "{} {} devices in {} ({:.0}/s on {workers} threads); thumbprints in {}\n",
        ids.len(),
        args.key_type,
        args.out.display(),
        ids.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        csv_path.display()
    );
    for (id, t) in thumbprints.iter().take(3) {
        text.push_str(&format!("  {id}  sha256 {}\n", t.sha256));
    }
    Ok(text)
}

fn registry(args: &PkiRegistryArgs) -> anyhow::Result<String> {
    anyhow::ensure!(
        args.count > 0,
        "--count 0 is not valid: at least one device"
    );
    let template = id_template(&args.id)?;
    let mut note = String::new();
    if let Some(dir) = &args.ca {
        let chain = load_ca_dir(dir)?;
        note = format!(
            "devices chain to {} (sha1 {})\n",
            chain.root().common_name(),
            Thumbprints::of(chain.root().cert()).sha1
        );
    }
    let self_signed = args.self_signed.then_some(()).and(args.devices.as_deref());
    match &args.out {
        Some(path) => {
            if !args.force {
                refuse_existing(std::slice::from_ref(path))?;
            }
            write_replacing(path, |w| {
                write_import(w, &template, args.count, self_signed)
            })?;
            Ok(format!(
                "{note}{} devices in {}\n",
                args.count,
                path.display()
            ))
        }
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            let written = write_import(&mut out, &template, args.count, self_signed);
            match written.and_then(|()| Ok(out.flush()?)) {
                Err(e) if is_broken_pipe(&e) => Ok(String::new()),
                r => r.map(|()| String::new()),
            }
        }
    }
}

fn server(args: &PkiServerArgs) -> anyhow::Result<String> {
    let names = ServerNames::new(args.names.clone(), args.ips.clone()).context("--name/--ip")?;
    let chain = load_ca_dir(&args.ca)?;
    let [cert, full, key] =
        ["cert", "chain", "key"].map(|k| args.out.join(format!("server.{k}.pem")));
    let files = [cert.clone(), full.clone(), key.clone()];
    if !args.force {
        refuse_existing(&files)?;
    }
    let identity = chain
        .mint_server_for(&names, args.key_type, Validity::days_from_now(args.days))
        .context("minting the server certificate")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let pems: Vec<String> = identity
        .chain
        .iter()
        .map(|c| pem("CERTIFICATE", c))
        .collect();
    write_public(&cert, pems[0].as_bytes())?;
    write_public(&full, pems.concat().as_bytes())?;
    write_private(
        &key,
        pem("PRIVATE KEY", identity.key.secret_der()).as_bytes(),
    )?;
    let sans: Vec<String> = args
        .names
        .iter()
        .cloned()
        .chain(args.ips.iter().map(ToString::to_string))
        .collect();
    Ok(format!(
        "server certificate ({}, {} days, serverAuth) for {} signed by {}\n  \
         certificate {}\n  chain       {} (present this: leaf, then {} intermediates)\n  \
         key         {} (0600)\nclients trust {}\n",
        args.key_type,
        args.days,
        sans.join(", "),
        chain.issuing().common_name(),
        cert.display(),
        full.display(),
        pems.len() - 1,
        key.display(),
        args.ca.join("root.cert.pem").display(),
    ))
}

/// A closed stdout (`| head`), as an I/O error or inside a JSON one.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let kind = e
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
        .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind());
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

/// Writes `path` through `fill` into a temporary sibling renamed over it at the end, so that a
/// failure half-way leaves no half-written file.
fn write_replacing(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = File::create(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|file| {
            let mut w = BufWriter::new(file);
            fill(&mut w)?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok(())
        })
        .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// The bulk import file, one line per device as it is made (constant memory): CA-signed lines,
/// or self-signed lines with the SHA-256 thumbprints of the certificates in `self_signed_dir`.
fn write_import(
    w: &mut impl Write,
    template: &IdTemplate,
    count: u64,
    self_signed_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let ids = (1..=count).map(|n| template.id(n));
    let mut line = |id: String, auth: ImportAuth| -> anyhow::Result<()> {
        serde_json::to_writer(&mut *w, &ImportDevice::create(id, auth))?;
        w.write_all(b"\n")?;
        Ok(())
    };
    match self_signed_dir {
        None => {
            for id in ids {
                line(id, ImportAuth::CertificateAuthority)?;
            }
        }
        Some(dir) => {
            for entry in thumbprints(dir, ids) {
                let (id, t) = entry?;
                let x509_thumbprint = X509Thumbprint {
                    primary_thumbprint: t.sha256,
                    secondary_thumbprint: None,
                };
                line(id, ImportAuth::SelfSigned { x509_thumbprint })?;
            }
        }
    }
    Ok(())
}

fn device_ids(template: &str, count: u64) -> anyhow::Result<DeviceIds> {
    anyhow::ensure!(count > 0, "--count 0 is not valid: at least one device");
    Ok(DeviceIds::new(id_template(template)?, count, 0, 1))
}

fn id_template(template: &str) -> anyhow::Result<IdTemplate> {
    IdTemplate::parse(template).with_context(|| format!("--id {template:?}"))
}
