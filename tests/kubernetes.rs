//! Issue 7: the Indexed Job manifest is Kubernetes YAML for batch/v1 and holds what fleetbench
//! relies on: one pod per shard, the environment the binary reads, scenario and CA as files.

use std::path::Path;

use serde_yaml::Value;

fn manifest() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/job.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

#[test]
fn the_job_runs_one_indexed_pod_per_shard() {
    let job = manifest();
    assert_eq!(str_at(&job, &["apiVersion"]), "batch/v1");
    assert_eq!(str_at(&job, &["kind"]), "Job");
    let spec = &job["spec"];
    assert_eq!(str_at(spec, &["completionMode"]), "Indexed");
    let completions = spec["completions"].as_u64().unwrap();
    assert!(completions > 1);
    assert_eq!(spec["parallelism"].as_u64(), Some(completions));
    assert_eq!(
        spec["backoffLimit"].as_u64(),
        Some(0),
        "a retried shard sends twice"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(str_at(pod, &["restartPolicy"]), "Never");

    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--print-summary"), "{args:?}");
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];

    // The environment the binary reads (cli.rs): index, count == completions, start instant.
    let env: Vec<(&str, &Value)> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    let var = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| *e)
            .unwrap_or_else(|| panic!("env {name} is missing"))
    };
    assert_eq!(
        str_at(
            var("JOB_COMPLETION_INDEX"),
            &["valueFrom", "fieldRef", "fieldPath"]
        ),
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert_eq!(
        str_at(var("FLEETBENCH_SHARDS"), &["value"])
            .parse::<u64>()
            .unwrap(),
        completions
    );
    let start = str_at(var("FLEETBENCH_START_AT"), &["value"]);
    assert!(humantime::parse_rfc3339(start).is_ok(), "{start}");

    // Scenario from the ConfigMap and CA from the Secret, mounted where the args read them.
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let source_of = |path_arg: &str| {
        let m = mounts
            .iter()
            .find(|m| path_arg.starts_with(str_at(m, &["mountPath"])))
            .unwrap_or_else(|| panic!("nothing mounted at {path_arg}"));
        let name = str_at(m, &["name"]);
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    let scenario = source_of(args[1]);
    assert!(args[1].ends_with("/scenario.toml"));
    assert_eq!(
        str_at(&scenario, &["configMap", "name"]),
        "fleetbench-scenario"
    );
    let ca = source_of(after("--ca"));
    assert_eq!(str_at(&ca, &["secret", "secretName"]), "fleetbench-ca");
    assert!(source_of(after("--results")).get("emptyDir").is_some());
}

#[test]
fn the_example_scenario_is_a_valid_sharded_fleet() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/scenario.toml");
    let plan = fleetbench::scenario::Plan::from_file(&path, &Default::default()).unwrap();
    let shard = fleetbench::scenario::Shard::new(3, 4).unwrap();
    assert_eq!(plan.fleet.devices % 4, 0);
    assert_ne!(
        plan.for_shard(shard).connect.schedule,
        plan.connect.schedule
    );
}

/// Whether a process of `uid` with `groups` may read a file of `owner`:`group` with `mode`.
fn readable(uid: u64, groups: &[u64], (owner, group, mode): (u64, u64, u64)) -> bool {
    if uid == 0 {
        return true;
    }
    if uid == owner {
        return mode & 0o400 != 0;
    }
    if groups.contains(&group) {
        return mode & 0o040 != 0;
    }
    mode & 0o004 != 0
}

/// Reads `file` as `uid`:`gid` (no supplementary groups) with `cat`; needs root.
fn read_as(uid: u32, gid: u32, file: &Path) -> bool {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new("cat")
        .arg(file)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap()
        .status
        .success()
}

/// Issue 16: the CA Secret is mounted so that the container's non-root user can read the key,
/// and nobody else.
#[test]
fn the_container_user_can_read_the_ca_secret_and_others_cannot() {
    let job = manifest();
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let id = |key: &str| {
        c["securityContext"][key]
            .as_u64()
            .or_else(|| pod["securityContext"][key].as_u64())
    };
    let user = id("runAsUser").expect("runAsUser is set");
    assert_ne!(user, 0, "the container does not run as root");
    let group = id("runAsGroup").expect("runAsGroup is set (else the image decides)");
    let fs_group = pod["securityContext"]["fsGroup"]
        .as_u64()
        .expect("the pod sets fsGroup, the group of the Secret's files");
    let ca = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"].as_str() == Some("fleetbench-ca"))
        .unwrap();
    let mode = ca["secret"]["defaultMode"]
        .as_u64()
        .expect("defaultMode is a number");
    assert_eq!(
        mode & 0o007,
        0,
        "the CA key is not world-readable: {mode:o}"
    );

    // As the kubelet mounts it: owned by root, group fsGroup (0 without one), mode defaultMode.
    let mounted = (0, fs_group, mode);
    let groups = [group, fs_group];
    assert!(
        readable(user, &groups, mounted),
        "user {user} (groups {groups:?}) cannot read a root:{fs_group} file of mode {mode:o}"
    );
    assert!(
        !readable(user, &[group], (0, 0, 0o400)),
        "the model refuses 0400 root:root"
    );

    // The same, for real, when the test may change owners: the file as mounted is read by that
    // user, and the old 0400 root:root mount is not.
    if !std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    {
        eprintln!("SKIPPED: not root, the mount is checked by the permission model only");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(group, fs_group, "cat runs with one group: runAsGroup");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = dir.path().join("root.key.pem");
    std::fs::write(&key, "key\n").unwrap();
    let (uid, gid) = (u32::try_from(user).unwrap(), u32::try_from(group).unwrap());
    std::os::unix::fs::chown(&key, Some(0), Some(u32::try_from(fs_group).unwrap())).unwrap();
    std::fs::set_permissions(
        &key,
        std::fs::Permissions::from_mode(u32::try_from(mode).unwrap()),
    )
    .unwrap();
    assert!(
        read_as(uid, gid, &key),
        "user {uid}:{gid} cannot read the mounted key"
    );
    std::os::unix::fs::chown(&key, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(
        !read_as(uid, gid, &key),
        "0400 root:root must be unreadable to {uid}"
    );
}
