//! Admission: what this operator lets a pipeline do beyond what its schema allows. Pure.
//!
//! - The images a pipeline may run and the Secrets it may read come from operator-level
//!   allow-lists ([`Policy`], set in the chart's values): the right to create an
//!   `EcomPipeline` in a namespace is the right to run an allowed image there with the
//!   allowed Secrets, no more.
//! - No two pipelines share storage: of two pipelines that name the same Kafka topic,
//!   overlapping HDFS paths or the same HBase table, the one that came first keeps it, the
//!   other is refused ([`storage_conflict`]).

use std::fmt;

use crate::validate::{nested, Pipeline};

/// Errors of building a [`Policy`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An allow-list was given but holds no pattern.
    #[error("{flag}: the allow-list is empty (leave the flag out to allow anything)")]
    EmptyList {
        /// The flag or variable that was empty.
        flag: &'static str,
    },
}

/// A name pattern of an allow-list: `*` matches any run of characters (`/` and `:` too),
/// everything else matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = name.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            // No `*`: the name is the pattern.
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One allow-list: `None` allows anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Option<Vec<Pattern>>);

impl AllowList {
    /// Parses a comma-separated list of patterns (`flag` names it in errors); `None`
    /// allows anything, an empty list is refused (it would allow nothing, by mistake).
    pub fn parse(flag: &'static str, list: Option<&str>) -> Result<Self, Error> {
        let Some(list) = list else {
            return Ok(AllowList(None));
        };
        let patterns: Vec<Pattern> = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Pattern(p.to_string()))
            .collect();
        if patterns.is_empty() {
            return Err(Error::EmptyList { flag });
        }
        Ok(AllowList(Some(patterns)))
    }

    /// Whether the list allows `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(name)))
    }

    /// Whether the list allows anything.
    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("*"),
            Some(ps) => {
                let names: Vec<String> = ps.iter().map(Pattern::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// The operator's allow-lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Images a pipeline may run (`spec.image`).
    pub images: AllowList,
    /// Secrets a pipeline may read (Kafka SASL credentials, the Kafka CA), by name in the
    /// pipeline's namespace.
    pub secrets: AllowList,
}

/// Why the operator refuses to run a pipeline (each is a `Ready` condition reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `spec.image` is outside the image allow-list.
    #[error("spec.image {image} is not allowed by this operator (allowed: {allowed})")]
    Image {
        /// The image.
        image: String,
        /// The allow-list.
        allowed: String,
    },
    /// A referenced Secret is outside the Secret allow-list.
    #[error("{field} {secret} is not allowed by this operator (allowed Secrets: {allowed})")]
    Secret {
        /// The spec field naming the Secret.
        field: &'static str,
        /// The Secret's name.
        secret: String,
        /// The allow-list.
        allowed: String,
    },
    /// Another pipeline, which came first, uses the same storage.
    #[error("{what} is used by EcomPipeline {other}, which came first; give this pipeline its own (or delete the other)")]
    StorageInUse {
        /// What both name, e.g. `HBase table t on host:9090`.
        what: String,
        /// `namespace/name` of the other pipeline.
        other: String,
    },
    /// An object of the name the operator would write exists and is not this pipeline's.
    #[error("{kind} {name} exists and does not belong to this EcomPipeline; the operator will not change or delete it (rename or delete it)")]
    NotOwned {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
    },
}

impl Refusal {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Image { .. } | Refusal::Secret { .. } => "NotAllowed",
            Refusal::StorageInUse { .. } => "StorageInUse",
            Refusal::NotOwned { .. } => "NotOwned",
        }
    }
}

/// The Secrets a pipeline references, with the field naming each.
pub fn secrets(p: &Pipeline) -> Vec<(&'static str, &str)> {
    let mut v = Vec::new();
    if let Some(sec) = &p.spec.kafka.security {
        if let Some(sasl) = &sec.sasl {
            v.push((
                "spec.kafka.security.sasl.secretName",
                sasl.secret_name.as_str(),
            ));
        }
        if let Some(tls) = &sec.tls {
            v.push((
                "spec.kafka.security.tls.caSecretName",
                tls.ca_secret_name.as_str(),
            ));
        }
    }
    v
}

/// Checks `p` against the operator's allow-lists.
pub fn check_policy(p: &Pipeline, policy: &Policy) -> Result<(), Refusal> {
    if !policy.images.allows(&p.spec.image) {
        return Err(Refusal::Image {
            image: p.spec.image.clone(),
            allowed: policy.images.to_string(),
        });
    }
    for (field, secret) in secrets(p) {
        if !policy.secrets.allows(secret) {
            return Err(Refusal::Secret {
                field,
                secret: secret.to_string(),
                allowed: policy.secrets.to_string(),
            });
        }
    }
    Ok(())
}

/// What `a` and `b` both use, if anything: the topic on the same bootstrap servers, an
/// HDFS path of one equal to or inside a path of the other on the same NameNode, or a
/// table of one (the serving table or its `_agg` table) on the same Thrift server.
pub fn shared_storage(a: &Pipeline, b: &Pipeline) -> Option<String> {
    let (ka, kb) = (&a.spec.kafka, &b.spec.kafka);
    if ka.bootstrap == kb.bootstrap && a.topic == b.topic {
        return Some(format!("Kafka topic {} on {}", a.topic, ka.bootstrap));
    }
    let hdfs = |p: &Pipeline| p.spec.hdfs.url.trim_end_matches('/').to_string();
    if hdfs(a) == hdfs(b) {
        let base = hdfs(a);
        for x in [&a.raw_url, &a.clean_url] {
            for y in [&b.raw_url, &b.clean_url] {
                let (px, py) = (&x[base.len()..], &y[base.len()..]);
                if nested(px, py) {
                    return Some(format!("HDFS path {px} (against {py}) on {base}"));
                }
            }
        }
    }
    if a.thrift == b.thrift {
        let tables = |p: &Pipeline| [p.table.clone(), format!("{}_agg", p.table)];
        for x in tables(a) {
            if tables(b).contains(&x) {
                return Some(format!("HBase table {x} on {}", a.thrift));
            }
        }
    }
    None
}

/// The refusal of `p` if a pipeline among `others` that comes first shares its storage. First
/// comes one that started (the operator created its workloads), then the earlier created (to
/// the second: the API server's precision), then the smaller UID. `p` itself in `others` is
/// ignored; leave out of `others` the pipelines that cannot run (refused by the policy).
pub fn storage_conflict<'a>(
    p: &Pipeline,
    others: impl IntoIterator<Item = &'a Pipeline>,
) -> Option<Refusal> {
    let age = |q: &Pipeline| (!q.started, q.created, q.owner.uid.clone());
    others
        .into_iter()
        .filter(|o| o.owner.uid != p.owner.uid && age(o) < age(p))
        .find_map(|o| {
            shared_storage(p, o).map(|what| Refusal::StorageInUse {
                what,
                other: format!("{}/{}", o.owner.namespace, o.owner.name),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{KafkaSasl, KafkaSecurity, KafkaTls};
    use crate::test_support::example;
    use crate::validate::validate;

    fn pattern(p: &str) -> Pattern {
        Pattern(p.to_string())
    }

    #[test]
    fn patterns_match_whole_names_with_stars_anywhere() {
        let repo = pattern("registry.example/ecom/ecom:*");
        assert!(repo.matches("registry.example/ecom/ecom:0.1.0"));
        assert!(repo.matches("registry.example/ecom/ecom:"));
        assert!(!repo.matches("registry.example/ecom/ecom-evil:1"));
        assert!(!repo.matches("evil/registry.example/ecom/ecom:1"));
        assert!(pattern("ecom-*").matches("ecom-kafka"));
        assert!(!pattern("ecom-*").matches("kafka-ecom-x"));
        assert!(pattern("*-kafka-*").matches("a-kafka-b"));
        assert!(!pattern("*-kafka-*").matches("a-kafka"));
        assert!(pattern("a*b*c").matches("abc"));
        assert!(pattern("a*b*c").matches("a-b-b-c"));
        assert!(!pattern("a*b*c").matches("a-c-b"));
        // The last literal may not reuse what a middle one consumed.
        assert!(!pattern("a*ab").matches("ab"));
        assert!(pattern("exact").matches("exact"));
        assert!(!pattern("exact").matches("exactly"));
        assert!(pattern("*").matches(""));
    }

    #[test]
    fn allow_lists_parse_and_refuse_an_empty_list() {
        let open = AllowList::parse("--allowed-images", None).expect("absent");
        assert!(open.is_open() && open.allows("anything:1"));
        let list = AllowList::parse("--allowed-images", Some(" a:* , b@* ,")).expect("two");
        assert_eq!(list.to_string(), "a:*,b@*");
        assert!(list.allows("a:1") && list.allows("b@sha256:00") && !list.allows("c:1"));
        let err = AllowList::parse("--allowed-secrets", Some(" , ")).expect_err("empty");
        assert!(err.to_string().starts_with("--allowed-secrets: "), "{err}");
    }

    #[test]
    fn images_and_secrets_outside_the_lists_are_refused_with_the_field() {
        let mut obj = example();
        obj.spec.kafka.security = Some(KafkaSecurity {
            protocol: crate::crd::KafkaProtocol::SASL_SSL,
            sasl: Some(KafkaSasl {
                mechanism: Default::default(),
                secret_name: "ecom-kafka-user".into(),
                username_key: "username".into(),
                password_key: "password".into(),
            }),
            tls: Some(KafkaTls {
                ca_secret_name: "cluster-ca".into(),
                ca_key: "ca.crt".into(),
            }),
        });
        let p = validate(&obj).expect("valid");
        assert_eq!(check_policy(&p, &Policy::default()), Ok(()));
        let policy = |images: &str, secrets: &str| Policy {
            images: AllowList::parse("i", Some(images)).expect("images"),
            secrets: AllowList::parse("s", Some(secrets)).expect("secrets"),
        };
        let image = check_policy(&p, &policy("other/*", "*")).expect_err("image");
        assert_eq!(image.reason(), "NotAllowed");
        assert!(image.to_string().starts_with("spec.image "), "{image}");
        let ca = check_policy(&p, &policy("*", "ecom-*")).expect_err("ca");
        assert!(
            ca.to_string()
                .starts_with("spec.kafka.security.tls.caSecretName cluster-ca is not allowed"),
            "{ca}"
        );
        assert_eq!(check_policy(&p, &policy("*", "ecom-*,cluster-ca")), Ok(()));
    }

    fn pipeline(name: &str, uid: &str, created: &str) -> Pipeline {
        let mut obj = example();
        obj.metadata.name = Some(name.into());
        obj.metadata.uid = Some(uid.into());
        obj.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().expect("time")),
        );
        obj.spec.kafka.topic = None;
        obj.spec.hbase.table = None;
        validate(&obj).expect("valid")
    }

    #[test]
    fn default_names_keep_pipelines_apart() {
        let a = pipeline("a", "uid-a", "2026-01-01T00:00:00Z");
        let b = pipeline("b", "uid-b", "2026-01-02T00:00:00Z");
        assert_eq!(a.topic, "ecom.shop.a");
        assert_eq!(a.table, "ecom_shop_a");
        assert_eq!(a.raw_url, "hdfs://namenode:9000/ecom/shop/a/raw");
        assert_eq!(shared_storage(&a, &b), None);
        assert_eq!(storage_conflict(&b, [&a, &b]), None);
    }

    type Edit = dyn Fn(&mut crate::crd::EcomPipeline);

    #[test]
    fn the_younger_of_two_pipelines_on_shared_storage_is_refused() {
        let a = pipeline("a", "uid-a", "2026-01-01T00:00:00Z");
        let young = |edit: &Edit| {
            let mut obj = example();
            obj.metadata.name = Some("b".into());
            obj.metadata.uid = Some("uid-b".into());
            obj.metadata.creation_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-01-02T00:00:00Z".parse().expect("time"),
                ));
            obj.spec.kafka.topic = None;
            obj.spec.hbase.table = None;
            edit(&mut obj);
            validate(&obj).expect("valid")
        };
        let cases: [(&Edit, &str); 5] = [
            (
                &|o| o.spec.kafka.topic = Some("ecom.shop.a".into()),
                "Kafka topic ecom.shop.a on kafka:9092",
            ),
            (
                &|o| o.spec.hdfs.raw_path = Some("/ecom/shop/a".into()),
                "HDFS path /ecom/shop/a (against /ecom/shop/a/raw)",
            ),
            (
                &|o| o.spec.hdfs.clean_path = Some("/ecom/shop/a/raw/x".into()),
                "HDFS path /ecom/shop/a/raw/x (against /ecom/shop/a/raw)",
            ),
            (
                &|o| o.spec.hbase.table = Some("ecom_shop_a".into()),
                "HBase table ecom_shop_a on hbase-thrift:9090",
            ),
            (
                &|o| o.spec.hbase.table = Some("ecom_shop_a_agg".into()),
                "HBase table ecom_shop_a_agg on hbase-thrift:9090",
            ),
        ];
        for (edit, what) in cases {
            let b = young(edit);
            let refusal = storage_conflict(&b, [&a, &b]).expect("refused");
            assert_eq!(refusal.reason(), "StorageInUse");
            let text = refusal.to_string();
            assert!(text.starts_with(what), "{text}");
            assert!(
                text.contains("EcomPipeline shop/a, which came first"),
                "{text}"
            );
            // The older one keeps running.
            assert_eq!(storage_conflict(&a, [&a, &b]), None, "{what}");
        }
        // The same names on another server are no conflict.
        let elsewhere = young(&|o| {
            o.spec.hbase.table = Some("ecom_shop_a".into());
            o.spec.hbase.thrift_host = "other-thrift".into();
        });
        assert_eq!(storage_conflict(&elsewhere, [&a]), None);
        // Paths sharing only a prefix of a name are no conflict.
        let sibling = young(&|o| o.spec.hdfs.raw_path = Some("/ecom/shop/a-raw".into()));
        assert_eq!(storage_conflict(&sibling, [&a]), None);
        // One that started keeps its storage against an older one that did not.
        let mut running = young(&|o| o.spec.hbase.table = Some("ecom_shop_a".into()));
        running.started = true;
        assert_eq!(storage_conflict(&running, [&a]), None);
        let refused = storage_conflict(&a, [&running]).expect("the older one waits");
        assert!(
            refused.to_string().contains("shop/b, which came first"),
            "{refused}"
        );
    }
}
