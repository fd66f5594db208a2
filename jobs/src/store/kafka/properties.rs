//! librdkafka properties from `--kafka-property KEY=VALUE` arguments and the
//! environment, with secrets accepted from the environment only.

use super::KafkaLogError;

/// Environment variable read as `sasl.username`.
pub const ENV_SASL_USERNAME: &str = ecom_contract::env::KAFKA_SASL_USERNAME;
/// Environment variable read as `sasl.password`.
pub const ENV_SASL_PASSWORD: &str = ecom_contract::env::KAFKA_SASL_PASSWORD;
/// Prefix of environment variables read as any librdkafka property:
/// `ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD` sets `ssl.key.password`.
pub const ENV_PROPERTY_PREFIX: &str = ecom_contract::env::KAFKA_PROPERTY_PREFIX;
/// Properties holding secrets, refused on the command line.
pub const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
];

/// The environment variable that carries librdkafka property `key`.
pub fn property_env_name(key: &str) -> String {
    match key {
        "sasl.username" => ENV_SASL_USERNAME.to_string(),
        "sasl.password" => ENV_SASL_PASSWORD.to_string(),
        _ => format!(
            "{ENV_PROPERTY_PREFIX}{}",
            key.replace(['.', '-'], "_").to_ascii_uppercase()
        ),
    }
}

/// librdkafka properties from `--kafka-property KEY=VALUE` arguments and the environment
/// `env`: `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD` set `sasl.username` and
/// `sasl.password`, `ECOM_KAFKA_PROPERTY_<NAME>` sets `<name>` in lower case with `_` read
/// as `.`. The environment comes last, so it wins. Secrets ([`SECRET_PROPERTIES`]) are
/// refused in `args`: a Kubernetes Secret reaches a pod as an environment variable.
pub fn kafka_properties(
    args: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, KafkaLogError> {
    let mut out = Vec::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| KafkaLogError::MalformedProperty(a.clone()))?;
        let k = k.trim();
        if SECRET_PROPERTIES.contains(&k) {
            return Err(KafkaLogError::SecretOnCommandLine {
                key: k.to_string(),
                env: property_env_name(k),
            });
        }
        out.push((k.to_string(), v.to_string()));
    }
    let mut from_env: Vec<(String, String)> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let key = match name.as_str() {
                ENV_SASL_USERNAME => "sasl.username".to_string(),
                ENV_SASL_PASSWORD => "sasl.password".to_string(),
                _ => name
                    .strip_prefix(ENV_PROPERTY_PREFIX)
                    .filter(|n| !n.is_empty())?
                    .to_ascii_lowercase()
                    .replace('_', "."),
            };
            Some((key, value))
        })
        .collect();
    from_env.sort();
    out.extend(from_env);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let args = vec![
            "security.protocol=SASL_PLAINTEXT".to_string(),
            "sasl.mechanism=PLAIN".to_string(),
        ];
        let props = kafka_properties(
            &args,
            env(&[
                ("KAFKA_SASL_PASSWORD", "p=w"),
                ("KAFKA_SASL_USERNAME", "ecom"),
                ("ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD", "k"),
                ("PATH", "/bin"),
                ("ECOM_KAFKA_PROPERTY_", "ignored"),
            ]),
        )
        .expect("valid");
        let props: Vec<(&str, &str)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.password", "p=w"),
                ("sasl.username", "ecom"),
                ("ssl.key.password", "k"),
            ]
        );
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_naming_the_variable() {
        let err = kafka_properties(&["sasl.password=hunter2".to_string()], Vec::new())
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("KAFKA_SASL_PASSWORD"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let err =
            kafka_properties(&["ssl.key.password=x".to_string()], Vec::new()).expect_err("refused");
        assert!(
            err.to_string()
                .contains("ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD"),
            "{err}"
        );
        let err = kafka_properties(&["novalue".to_string()], Vec::new()).expect_err("malformed");
        assert_eq!(
            err.to_string(),
            "--kafka-property novalue: expected KEY=VALUE"
        );
    }
}
