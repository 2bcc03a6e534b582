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
