//! Integration tests, one binary (ripgrep style). Each module talks to real servers over real
//! TLS on loopback, on ephemeral ports; none sleeps to synchronise.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

// Fixtures: inline scenarios, test PKI, hub on 127.0.0.1:0.
mod support;

// Issue 2: MQTT fleets against the embedded hub, refusals, summary.json.
mod run_mqtt;
// Issue 4: AMQP 1.0 fleets against the embedded hub and RabbitMQ, attach refusals.
mod run_amqp;
// Issue 19: fe2o3's engine writes queued frames together (patches/fe2o3-amqp).
mod amqp_flush;
// Issue 2: the binary's exit codes and scenario error messages.
mod cli;
// Issue 8: the generic dialect against Mosquitto with client certificates.
mod mosquitto;
// Issue 18: MQTT 5 against Mosquitto: reason codes counted, the receive maximum honoured.
mod mqtt5;
// Issue 18: the event-grid dialect's CONNECT strings against Mosquitto, its refusals and quotas.
mod event_grid;
// Issue 8: the embedded hub refuses what IoT Hub refuses and survives hostile input.
mod hub_security;
// Issue 5: load shapes, coordinated omission, churn, TLS knobs.
mod load_model;
// Issue 13: scheduled starts finer than tokio's millisecond timer; the closed model corrected.
mod schedule;
// Issue 8: hub outages, silent hubs, unwritable results.
mod faults;
// Issue 13: max-duration and grace bound every session; signals; setup errors leave nothing.
mod bound;
// Issue 8: broken scenario files through the binary.
mod corpus;
// Issue 8: IoT Hub throttling on the embedded hub, recognised in the report.
mod throttling;
// Issue 6: results layout and schema, timeline.csv, latency.hlog, `report`, `compare`.
mod reports;
// Issue 6: thresholds and exit codes.
mod thresholds;
// Issue 19: the timeline's interval histograms spooled during a run come back whole.
mod timeline_spool;
// Issue 19: a run makes its phases' histograms before its first session.
mod prepared;
// Issue 14: latency per second in the timeline, timeline.csv and latency.hlog; the knee; merge.
mod latency_timeline;
// Issue 14: the knee of a step past a tier quota at the right second, in data and report.html.
mod knee;
// Issue 14: the scenario's description everywhere; error texts naming the file and the fault.
mod report_details;
// Issue 14: each stage's target against what was held, and why it fell short.
mod stages;
// Issue 14: `hub serve` names a broken server.pem or key and says what is wrong.
mod hub_pem;
// Issue 14: the CSV columns in results/schema.json match a real run's; the READMEs name them all.
mod results_docs;
// Issue 14: the live progress display under a 40-column pseudo-terminal, through the binary.
mod progress_tty;
// Issue 14: which devices failed: ids in summary.json, failures.csv and the reports.
mod failed_devices;
// Issue 6: the live metrics endpoint and Ctrl-C writing partial results.
mod live;
// Issue 6: report.html in headless Chromium.
mod report_html;
// Issue 3: certificate exports checked by the openssl CLI; bulk import; bad input.
mod pki;
// Issue 3: bad CA directories, codes and PFX key types; PKCS#1 keys.
mod pki_errors;
// Issue 16: every certificate kind passes strict verifiers (openssl, Python's default context).
mod pki_strict;
// Issue 16: `pki server`, a server certificate for any broker.
mod pki_server;
// Issue 3: the CA workflow on the embedded hub (portal steps, state directory, hub serve).
mod hub_ca;
// Issue 16: the hub's identity made explicitly and never replaced behind the user's back.
mod hub_identity;
// Issue 16: registry writes serialised and validated as IoT Hub does; devices added while serving.
mod hub_registry;
// Issue 7: shards of one fleet as separate processes against one hub, merged without loss.
mod shards;
// Issue 7: the Kubernetes Indexed Job manifest holds what the binary reads.
mod kubernetes;
// Issue 13: one connect rate in run, merge and thresholds; default checks; the verdict first.
mod verdicts;
// Issue 13: days past 9999, hubs past a million devices, a registry file of any size.
mod limits;
// Issue 13: `compare` judges noise as noise and names what differs.
mod compare;
// Issue 15: the standalone hub accounts for what it received (metrics, summary, refusal log).
mod hub_accounts;
// Issue 15: the AMQP verifying receiver: the hub's Event Hubs-compatible endpoint, RabbitMQ.
mod verify_amqp;
// Issue 17: crypto providers, key-exchange groups (post-quantum), ML-DSA certificates.
mod tls_choices;
// Issue 17: bytes and round trips per handshake (HelloRetryRequest) against independent counts.
mod tls_wire;
// Issue 17: CPU per handshake, client and server apart (embedded hub threads, --server-pid).
mod cpu;
// Issue 17: CPU measured inside each handshake, full and resumed apart, client and hub; merged.
mod cpu_split;
// Issue 15: run and merge ask `hub serve` what it received of each run; losses fail the run.
mod hub_runs;
// Issue 15: a verifying receiver proves delivery against Mosquitto, and catches what it drops.
mod verify_mqtt;
// Issue 15: `run` proves delivery on AMQP targets: RabbitMQ queues, `hub serve`'s Event Hubs endpoint.
mod verify_run;
// Issue 17: the capacity search lands within 10 % of an S1 hub's connect limit; its verdict.
mod capacity;
// Issue 18: MQTT and AMQP over WebSockets: embedded hub, `hub serve --mqtt-ws/--amqp-ws`, Mosquitto.
mod websocket;
// Issue 17: a sweep in one command: [matrix] cells in alternating rounds, compared (Chromium).
mod sweep;
// Issue 14 (follow-up): a starved generator's timeline keeps wall-clock seconds and per-second rates.
mod timeline_starved;
