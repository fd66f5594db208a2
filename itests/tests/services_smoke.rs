//! Smoke tests against the real services started by `scripts/services.sh up`:
//! Apache Kafka (KRaft), HDFS (NameNode + DataNode), HBase through its Thrift 1 server and a
//! Kubernetes API server backed by etcd.
//!
//! Every test reads the endpoints from the variables printed by `scripts/services.sh env` and
//! fails (never skips) when one is missing. Names (topics, paths, tables, CRDs) are unique per
//! run so the tests can be rerun against the same services.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{service_env, unique_suffix};

// ------------------------------------------------------------------------------------------
// Kafka

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topic_produce_consume_round_trip() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

    let bootstrap = service_env("KAFKA_BOOTSTRAP");
    let topic = format!("smoke-{}", unique_suffix());

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("create Kafka admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("CreateTopics request");
    for result in created {
        result.unwrap_or_else(|(t, e)| panic!("creating topic {t} failed: {e}"));
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "30000")
        .set("acks", "all")
        .create()
        .expect("create Kafka producer");
    let sent: Vec<(String, String)> = (0..3)
        .map(|i| (format!("key-{i}"), format!("order {i} of {topic}")))
        .collect();
    for (key, payload) in &sent {
        producer
            .send(
                FutureRecord::to(&topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("delivering {key} to {topic} failed: {e}"));
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("smoke-group-{}", unique_suffix()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create Kafka consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("build partition assignment");
    consumer.assign(&assignment).expect("assign partition 0");

    let mut received = Vec::new();
    while received.len() < sent.len() {
        let msg = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("no message from {topic} within 60s (got {received:?} so far)")
            })
            .expect("consume from Kafka");
        let key = String::from_utf8(msg.key().expect("message key").to_vec()).expect("utf-8 key");
        let payload = msg
            .payload_view::<str>()
            .expect("message payload")
            .expect("utf-8 payload")
            .to_owned();
        received.push((key, payload));
    }
    assert_eq!(
        received, sent,
        "consumed messages differ from the produced ones"
    );

    let _ = admin.delete_topics(&[topic.as_str()], &opts).await;
}

// ------------------------------------------------------------------------------------------
// HDFS

/// The whole content of the HDFS file `path`.
async fn read_whole(client: &hdfs_native::Client, path: &str) -> bytes::Bytes {
    let reader = client
        .read(path)
        .await
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    reader
        .read_range(0, reader.file_length())
        .await
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdfs_write_list_read_rename() {
    use hdfs_native::{ClientBuilder, WriteOptions};

    let url = service_env("HDFS_URL");
    let client = ClientBuilder::new()
        .with_url(&url)
        .build()
        .unwrap_or_else(|e| panic!("HDFS client for {url}: {e}"));

    let dir = format!("/smoke/{}", unique_suffix());
    client
        .mkdirs(&dir, 0o755, true)
        .await
        .unwrap_or_else(|e| panic!("mkdirs {dir}: {e}"));

    // A bit more than one 64 KiB packet, so the write spans several packets.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let first = format!("{dir}/orders.bin");
    let mut writer = client
        .create(&first, WriteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create {first}: {e}"));
    writer
        .write_bytes(bytes::Bytes::from(data.clone()))
        .await
        .unwrap_or_else(|e| panic!("write {first}: {e}"));
    writer
        .close()
        .await
        .unwrap_or_else(|e| panic!("close {first}: {e}"));

    let listing = client
        .list_status(&dir, false)
        .await
        .unwrap_or_else(|e| panic!("list {dir}: {e}"));
    assert_eq!(listing.len(), 1, "listing of {dir}: {listing:?}");
    assert!(
        listing[0].path.ends_with("/orders.bin"),
        "listed {:?}",
        listing[0].path
    );
    assert_eq!(listing[0].length, data.len());
    assert!(!listing[0].isdir);

    assert_eq!(
        read_whole(&client, &first).await.as_ref(),
        data.as_slice(),
        "content read back from {first} differs"
    );

    let second = format!("{dir}/orders-renamed.bin");
    client
        .rename(&first, &second, false)
        .await
        .unwrap_or_else(|e| panic!("rename {first} -> {second}: {e}"));
    assert!(
        client.get_file_info(&first).await.is_err(),
        "{first} still exists after the rename"
    );
    let info = client
        .get_file_info(&second)
        .await
        .unwrap_or_else(|e| panic!("stat {second}: {e}"));
    assert_eq!(info.length, data.len());
    assert_eq!(
        read_whole(&client, &second).await.as_ref(),
        data.as_slice(),
        "content of the renamed file differs"
    );

    assert!(client
        .delete(&dir, true)
        .await
        .expect("delete the test directory"));
}

// ------------------------------------------------------------------------------------------
// HBase through the Thrift 1 gateway (binary protocol, buffered transport)

// One table through create, put, get and scan: each call needs the one before.
#[test]
fn hbase_thrift_create_put_get_scan() {
    use hbase_thrift::hbase::{
        ColumnDescriptor, HbaseSyncClient, Mutation, THbaseSyncClient, TScan,
    };
    use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
    use thrift::transport::{
        TBufferedReadTransport, TBufferedWriteTransport, TIoChannel, TTcpChannel,
    };

    let addr = service_env("HBASE_THRIFT");
    let mut channel = TTcpChannel::new();
    channel
        .open(addr.as_str())
        .unwrap_or_else(|e| panic!("connect to the HBase Thrift server at {addr}: {e}"));
    let (input, output) = channel.split().expect("split the Thrift channel");
    let mut hbase = HbaseSyncClient::new(
        TBinaryInputProtocol::new(TBufferedReadTransport::new(input), true),
        TBinaryOutputProtocol::new(TBufferedWriteTransport::new(output), true),
    );

    let table = format!("smoke_{}", unique_suffix());
    // Default::default() leaves every field unset; give the IDL's defaults explicitly.
    let family = ColumnDescriptor {
        name: Some(b"cf:".to_vec()),
        max_versions: Some(3),
        compression: Some("NONE".into()),
        in_memory: Some(false),
        bloom_filter_type: Some("NONE".into()),
        bloom_filter_vector_size: Some(0),
        bloom_filter_nb_hashes: Some(0),
        block_cache_enabled: Some(true),
        time_to_live: Some(i32::MAX),
    };
    hbase
        .create_table(table.clone().into_bytes(), vec![family])
        .unwrap_or_else(|e| panic!("createTable {table}: {e}"));

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let attrs = BTreeMap::new;
        for i in 0..3 {
            let put = Mutation {
                is_delete: Some(false),
                column: Some(b"cf:amount".to_vec()),
                value: Some(format!("{}", 100 + i).into_bytes()),
                write_to_w_a_l: Some(true),
            };
            hbase
                .mutate_row(
                    table.clone().into_bytes(),
                    format!("order-{i}").into_bytes(),
                    vec![put],
                    attrs(),
                )
                .unwrap_or_else(|e| panic!("mutateRow order-{i} in {table}: {e}"));
        }

        let rows = hbase
            .get_row(table.clone().into_bytes(), b"order-1".to_vec(), attrs())
            .unwrap_or_else(|e| panic!("getRow order-1 from {table}: {e}"));
        assert_eq!(rows.len(), 1, "getRow returned {rows:?}");
        let cell = rows[0]
            .columns
            .as_ref()
            .and_then(|c| c.get(b"cf:amount".as_slice()))
            .unwrap_or_else(|| panic!("cf:amount missing in {rows:?}"));
        assert_eq!(cell.value.as_deref(), Some(b"101".as_slice()));

        // TScan::default() fills every field (an empty filter string, timestamp 0, ...), which
        // the server rejects or applies: leave unused fields unset.
        let scan = TScan {
            start_row: Some(b"order-".to_vec()),
            stop_row: Some(b"order.".to_vec()),
            timestamp: None,
            columns: Some(vec![b"cf:amount".to_vec()]),
            caching: Some(10),
            filter_string: None,
            batch_size: None,
            sort_columns: None,
            reversed: None,
            cache_blocks: None,
        };
        let scanner = hbase
            .scanner_open_with_scan(table.clone().into_bytes(), scan, attrs())
            .unwrap_or_else(|e| panic!("scannerOpenWithScan on {table}: {e}"));
        let mut scanned = Vec::new();
        loop {
            let batch = hbase.scanner_get_list(scanner, 10).expect("scannerGetList");
            if batch.is_empty() {
                break;
            }
            for row in batch {
                let key = String::from_utf8(row.row.clone().unwrap_or_default()).unwrap();
                let value = row
                    .columns
                    .as_ref()
                    .and_then(|c| c.get(b"cf:amount".as_slice()))
                    .and_then(|cell| cell.value.clone())
                    .map(|v| String::from_utf8(v).unwrap());
                scanned.push((key, value));
            }
        }
        hbase.scanner_close(scanner).expect("scannerClose");
        assert_eq!(
            scanned,
            vec![
                ("order-0".to_string(), Some("100".to_string())),
                ("order-1".to_string(), Some("101".to_string())),
                ("order-2".to_string(), Some("102".to_string())),
            ]
        );
    }));

    // Drop the table whatever happened above, then report.
    let dropped = hbase
        .disable_table(table.clone().into_bytes())
        .and_then(|_| hbase.delete_table(table.clone().into_bytes()));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    dropped.unwrap_or_else(|e| panic!("dropping {table}: {e}"));
}

// ------------------------------------------------------------------------------------------
// Kubernetes API server

// One CRD through a custom resource, its status patch and deletion: each step needs the
// one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_crd_custom_resource_and_status_patch() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
    use kube::core::{ApiResource, GroupVersionKind};
    use serde_json::json;

    let kubeconfig = service_env("KUBECONFIG");
    assert!(
        std::path::Path::new(&kubeconfig).is_file(),
        "KUBECONFIG={kubeconfig} does not exist: run `make services-up` first"
    );
    let client = kube::Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("kube client from KUBECONFIG={kubeconfig}: {e}"));

    let group = "smoke.ecom.example.io";
    let suffix = unique_suffix();
    let kind = format!("Pipeline{suffix}");
    let plural = format!("pipelines{suffix}");
    let crd_name = format!("{plural}.{group}");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": plural, "kind": kind, "singular": format!("pipeline{suffix}") },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": {
                            "topic": { "type": "string" },
                            "replicas": { "type": "integer", "minimum": 1 }
                        }},
                        "status": { "type": "object", "properties": {
                            "phase": { "type": "string" },
                            "processed": { "type": "integer" }
                        }}
                    }
                }}
            }]
        }
    }))
    .expect("CRD manifest");
    crds.create(&PostParams::default(), &crd)
        .await
        .unwrap_or_else(|e| panic!("create CRD {crd_name}: {e}"));

    // The CRD must be Established before its resources are served.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = crds.get(&crd_name).await.expect("get CRD");
        let established = current
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conds| {
                conds
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "CRD {crd_name} not Established within 60s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", &kind), &plural);
    let pipelines: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let name = format!("orders-{suffix}");
    let object = DynamicObject::new(&name, &resource)
        .within("default")
        .data(json!({ "spec": { "topic": "orders", "replicas": 2 } }));

    // Discovery of a fresh CRD can lag a moment behind Established: retry NotFound briefly.
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        match pipelines.create(&PostParams::default(), &object).await {
            Ok(created) => break created,
            Err(kube::Error::Api(status)) if status.code == 404 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("create {kind} {name}: {e}"),
        }
    };
    assert_eq!(created.data["spec"]["replicas"], 2);
    let generation = created.metadata.generation;

    let patched = pipelines
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Running", "processed": 42 } })),
        )
        .await
        .unwrap_or_else(|e| panic!("patch status of {kind} {name}: {e}"));
    assert_eq!(patched.data["status"]["phase"], "Running");

    let fetched = pipelines.get(&name).await.expect("get the custom resource");
    assert_eq!(fetched.data["status"]["phase"], "Running");
    assert_eq!(fetched.data["status"]["processed"], 42);
    assert_eq!(fetched.data["spec"]["topic"], "orders");
    assert_eq!(
        fetched.metadata.generation, generation,
        "a status-subresource patch must not bump metadata.generation"
    );

    pipelines
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete {kind} {name}: {e}"));
    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete CRD {crd_name}: {e}"));
}
