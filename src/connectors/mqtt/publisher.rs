//! The QoS 1 publisher, and the [`MqttSink`] alerts and simulated events are published through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::QoS;

use super::session::{self, Session, SessionHandler};
use super::{options, TopicTemplate};
use crate::connectors::ConnectorError;
use crate::sinks::{Message, Sink};
use crate::Error;

/// A QoS 1 publisher on its own [`Session`]; `flush` waits for the broker's acknowledgements.
pub struct MqttPublisher {
    broker: String,
    client_id: String,
    session: Option<Session>,
    sent: u64,
    acked: Arc<AtomicU64>,
}

impl std::fmt::Debug for MqttPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MqttPublisher(sent {})", self.sent)
    }
}

/// Counts the broker's acknowledgements.
struct Acks(Arc<AtomicU64>);

impl SessionHandler for Acks {
    fn acked(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl MqttPublisher {
    /// Connects to `broker` with a client id made of `prefix`, the process id and a counter
    /// (two publishers must never share a session), and a persistent session so that messages
    /// not yet acknowledged when the connection drops are sent again after reconnecting. The
    /// session is removed from the broker when the publisher is dropped.
    pub fn connect(broker: &str, prefix: &str) -> Result<Self, ConnectorError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let client_id = format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let opts = options(broker, &client_id, true)?;
        let acked = Arc::new(AtomicU64::new(0));
        let name = format!("mqtt publisher ({broker})");
        let session = Session::start(opts, 4096, &name, "mqtt-publisher", Acks(acked.clone()))?;
        Ok(MqttPublisher { broker: broker.to_string(), client_id, session: Some(session), sent: 0, acked })
    }

    /// Publishes at QoS 1 (blocks while the client's request queue is full).
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), ConnectorError> {
        let Some(session) = &self.session else {
            return Err(ConnectorError::Broker {
                message: "mqtt: the publisher is closed".into(),
                retryable: false,
            });
        };
        session
            .client()
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .map_err(|e| ConnectorError::broker(format!("mqtt: publishing to {topic}: {e}")))?;
        self.sent += 1;
        Ok(())
    }

    /// Waits until the broker has acknowledged everything published.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), ConnectorError> {
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < self.sent {
            if Instant::now() >= deadline {
                return Err(ConnectorError::broker(format!(
                    "mqtt: {} of {} messages unacknowledged after {timeout:?}",
                    self.sent - self.acked.load(Ordering::Relaxed),
                    self.sent
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Messages published.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        // Stop the event loop first, then remove the persistent session from the broker.
        drop(self.session.take());
        session::forget(&self.broker, &self.client_id);
    }
}

/// A broker as a [`Sink`]: each line published at QoS 1 on the topic its device and metric
/// give in a template.
#[derive(Debug)]
pub struct MqttSink {
    publisher: MqttPublisher,
    template: TopicTemplate,
    flush_timeout: Duration,
}

impl MqttSink {
    /// The alert sink: alerts on `<prefix>/<device>`.
    pub fn alerts(broker: &str, prefix: &str) -> Result<Self, ConnectorError> {
        let publisher = MqttPublisher::connect(broker, "sensorflow-alerts")?;
        let template = TopicTemplate::new(&format!("{prefix}/{{device}}"));
        Ok(MqttSink { publisher, template, flush_timeout: Duration::from_secs(30) })
    }

    /// A sink for events on `template` (e.g. `sensors/{device}/{metric}`).
    pub fn events(broker: &str, template: &str) -> Result<Self, ConnectorError> {
        let publisher = MqttPublisher::connect(broker, "sensorflow-simulate")?;
        Ok(MqttSink {
            publisher,
            template: TopicTemplate::new(template),
            flush_timeout: Duration::from_secs(60),
        })
    }
}

impl Sink for MqttSink {
    fn send(&mut self, m: &Message<'_>) -> Result<(), Error> {
        Ok(self.publisher.publish(&self.template.render(m.device, m.metric), m.payload)?)
    }

    fn flush(&mut self) -> Result<(), Error> {
        Ok(self.publisher.flush(self.flush_timeout)?)
    }
}
