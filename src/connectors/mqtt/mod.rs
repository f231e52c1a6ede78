//! MQTT (rumqttc, MQTT 3.1.1): a source over a topic filter shared by the workers, and a
//! publisher used by the alert sink, the simulator and the bridge; every client runs on the
//! one [`session::Session`] event loop (reconnect with backoff) in `session`.
//!
//! Each worker has its own client. With more than one worker the filter becomes the shared
//! subscription `$share/<group>/<filter>`, so the broker spreads messages over the workers
//! (Mosquitto 2 and EMQX support this for 3.1.1 clients). A client runs its network loop on
//! its own thread and hands messages over a bounded channel: when the dataflow falls behind,
//! the channel fills, the thread stops reading the socket and the broker holds the rest (up to
//! its own queue limits), so memory stays bounded. The session is persistent (`clean_session`
//! off, a stable client id), so messages published while the client is reconnecting (with
//! backoff) are queued for it by the broker.
//!
//! The MQTT source acknowledges a message when it reaches the process. For replay after a
//! crash, put Kafka in between (`sensorflow bridge`) and read the Kafka source.

mod publisher;
pub mod session;
mod source;

use std::time::Duration;

use rumqttc::MqttOptions;
use sensorflow_operators::{DeadLetter, SourceBatch};
use serde::{Deserialize, Serialize};

pub use publisher::{MqttPublisher, MqttSink};
pub use source::mqtt_readers;

use crate::connectors::parse::EventBuilder;
use crate::connectors::text::json::parse_json;
use crate::connectors::ConnectorError;

/// Largest MQTT payload accepted; larger ones are dead-lettered.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Where an MQTT source reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// Broker, `host:port`.
    pub broker: String,
    /// Topic filter (wildcards allowed), e.g. `sensors/#`.
    pub topic: String,
    /// Optional topic pattern naming the device and metric, e.g. `sensors/{device}/{metric}`;
    /// payloads may then leave those fields out.
    #[serde(default)]
    pub topic_template: Option<String>,
    /// Client id prefix (each worker appends its index) and shared-subscription group.
    #[serde(default = "default_client")]
    pub client_id: String,
    /// Messages buffered per worker between the network thread and the dataflow.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// End the run once nothing has arrived for this long (ms); unset for live use.
    #[serde(default)]
    pub until_idle_ms: Option<u64>,
}

fn default_client() -> String {
    "sensorflow".into()
}
fn default_buffer() -> usize {
    16_384
}

impl MqttSourceConfig {
    /// A source on `topic` at `broker` with the defaults.
    pub fn new(broker: &str, topic: &str) -> Self {
        MqttSourceConfig {
            broker: broker.into(),
            topic: topic.into(),
            topic_template: None,
            client_id: default_client(),
            buffer: default_buffer(),
            until_idle_ms: None,
        }
    }
}

/// Splits `host:port`.
pub fn host_port(addr: &str) -> Result<(String, u16), ConnectorError> {
    let addr = addr.trim_start_matches("mqtt://").trim_start_matches("tcp://");
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| ConnectorError::Config(format!("mqtt: broker {addr:?} is not host:port")))?;
    let port = port.parse().map_err(|_| ConnectorError::Config(format!("mqtt: bad port in {addr:?}")))?;
    Ok((host.to_string(), port))
}

/// Client options shared by every MQTT client here.
pub fn options(broker: &str, client_id: &str, persistent: bool) -> Result<MqttOptions, ConnectorError> {
    let (host, port) = host_port(broker)?;
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(!persistent);
    o.set_max_packet_size(MAX_PAYLOAD * 4, MAX_PAYLOAD * 4);
    o.set_inflight(1000);
    Ok(o)
}

/// A topic pattern with `{device}` and `{metric}` segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicTemplate {
    segments: Vec<String>,
}

impl TopicTemplate {
    /// Parses `sensors/{device}/{metric}`.
    pub fn new(pattern: &str) -> Self {
        TopicTemplate { segments: pattern.split('/').map(str::to_string).collect() }
    }

    /// The (device, metric) a topic names, or `None` if it does not match.
    pub fn extract<'t>(&self, topic: &'t str) -> Option<(Option<&'t str>, Option<&'t str>)> {
        let parts: Vec<&str> = topic.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let (mut device, mut metric) = (None, None);
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg.as_str() {
                "{device}" => device = Some(*part),
                "{metric}" => metric = Some(*part),
                "+" => {}
                s if s == *part => {}
                _ => return None,
            }
        }
        Some((device, metric))
    }

    /// The topic for a device and metric.
    pub fn render(&self, device: &str, metric: &str) -> String {
        self.segments
            .iter()
            .map(|s| match s.as_str() {
                "{device}" => device,
                "{metric}" => metric,
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Parses one MQTT message into `out`: JSON objects, one per line; device and metric may come
/// from the topic when a template is given.
pub fn parse_message(
    source: &str,
    position: u64,
    topic: &str,
    payload: &[u8],
    template: Option<&TopicTemplate>,
    builder: &mut EventBuilder,
    out: &mut SourceBatch,
) {
    if payload.len() > MAX_PAYLOAD {
        let reason = format!("payload of {} bytes is over the {MAX_PAYLOAD}-byte limit", payload.len());
        out.dead.push(DeadLetter::new(source, position, reason, payload));
        return;
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        // Empty or only blanks: a record all the same, never dropped unseen (found by fuzzing).
        out.dead.push(DeadLetter::new(source, position, "empty message", payload));
        return;
    }
    let names = match template {
        Some(t) => match t.extract(topic) {
            Some(names) => Some(names),
            None => {
                let reason = format!("topic {topic:?} does not match the topic template");
                out.dead.push(DeadLetter::new(source, position, reason, payload));
                return;
            }
        },
        None => None,
    };
    for line in payload.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
        let parsed = match parse_json(line, builder) {
            Ok(e) => Ok(e),
            Err(reason) => match names {
                Some((device, metric)) if device.is_some() || metric.is_some() => {
                    with_topic_names(line, device, metric).map_or(Err(reason), |l| parse_json(&l, builder))
                }
                _ => Err(reason),
            },
        };
        match parsed {
            Ok(e) => out.events.push(e),
            Err(reason) => out.dead.push(DeadLetter::new(source, position, reason, line)),
        }
    }
}

/// The payload object with `device`/`metric` filled in from the topic where it lacks them.
pub fn with_topic_names(line: &[u8], device: Option<&str>, metric: Option<&str>) -> Option<Vec<u8>> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).ok()?;
    for (k, name) in [("device", device), ("metric", metric)] {
        if let Some(name) = name {
            v.entry(k).or_insert_with(|| serde_json::Value::String(name.to_string()));
        }
    }
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensorflow_operators::Dictionary;

    fn parse(topic: &str, payload: &[u8], template: Option<&str>) -> (SourceBatch, Dictionary) {
        let dict = Dictionary::default();
        let mut b = EventBuilder::new(dict.devices.clone(), dict.metrics.clone(), Default::default());
        let mut out = SourceBatch::default();
        let t = template.map(TopicTemplate::new);
        parse_message("mqtt:test", 7, topic, payload, t.as_ref(), &mut b, &mut out);
        (out, dict)
    }

    #[test]
    fn names_come_from_the_topic_when_the_payload_lacks_them() {
        let (out, dict) = parse("s/d9/temperature", br#"{"ts":5,"value":1.5}"#, Some("s/{device}/{metric}"));
        assert!(out.dead.is_empty(), "{:?}", out.dead);
        assert_eq!(out.events.len(), 1);
        assert_eq!(&*dict.device_name(out.events[0].device), "d9");
        assert_eq!(&*dict.metric_name(out.events[0].metric), "temperature");
        assert_eq!(out.events[0].value, 1.5);
    }

    #[test]
    fn several_lines_make_several_events() {
        let payload = b"{\"device\":\"a\",\"metric\":\"m\",\"ts\":1,\"value\":1}\n{\"device\":\"b\",\"metric\":\"m\",\"ts\":2,\"value\":2}\n";
        let (out, _) = parse("any/topic", payload, None);
        assert_eq!(out.events.len(), 2);
        assert!(out.dead.is_empty());
    }

    #[test]
    fn bad_messages_become_dead_letters_with_reasons() {
        let (out, _) = parse("other/d1/m", br#"{"ts":1,"value":1}"#, Some("s/{device}/{metric}"));
        assert!(out.events.is_empty());
        assert!(out.dead[0].reason.contains("does not match the topic template"), "{:?}", out.dead);
        assert_eq!(out.dead[0].position, 7);

        let (out, _) = parse("s/d1/m", b"not json", Some("s/{device}/{metric}"));
        assert_eq!((out.events.len(), out.dead.len()), (0, 1));

        let (out, _) = parse("s/d1/m", br#"{"ts":"soon","value":1}"#, Some("s/{device}/{metric}"));
        assert_eq!((out.events.len(), out.dead.len()), (0, 1));

        let huge = vec![b'x'; MAX_PAYLOAD + 1];
        let (out, _) = parse("s/d1/m", &huge, None);
        assert!(out.dead[0].reason.contains("over the"), "{}", out.dead[0].reason);
        assert!(out.dead[0].raw.len() < huge.len(), "raw input is cut");
    }

    #[test]
    fn templates_render_and_match() {
        let t = TopicTemplate::new("plant/{device}/+/{metric}");
        assert_eq!(t.extract("plant/d1/x/temp"), Some((Some("d1"), Some("temp"))));
        assert_eq!(t.extract("plant/d1/temp"), None);
        assert_eq!(t.render("d2", "hum"), "plant/d2/+/hum");
    }

    #[test]
    fn a_broker_address_needs_a_port() {
        assert_eq!(host_port("mqtt://h:1883").unwrap(), ("h".to_string(), 1883));
        assert!(host_port("h").is_err());
        assert!(host_port("h:port").is_err());
    }
}
