//! The MQTT source: each worker's client on a shared subscription, handing messages to the
//! dataflow over a bounded channel (a full channel stops the network loop reading, so the
//! broker holds the rest).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};

use rumqttc::{Client, Publish, QoS};
use sensorflow_operators::{PartitionReader, Poll, SourceBatch, SourceError};

use super::session::{Flow, Session, SessionHandler};
use super::{options, parse_message, MqttSourceConfig, TopicTemplate};
use crate::connectors::parse::EventBuilder;
use crate::connectors::{ConnectorError, ReaderContext, UntilIdle};

/// Opens this worker's MQTT reader.
pub fn mqtt_readers(
    cfg: &MqttSourceConfig,
    ctx: &ReaderContext,
) -> Result<Vec<Box<dyn PartitionReader>>, ConnectorError> {
    let filter =
        if ctx.peers > 1 { format!("$share/{}/{}", cfg.client_id, cfg.topic) } else { cfg.topic.clone() };
    let client_id = format!("{}-{}", cfg.client_id, ctx.index);
    let opts = options(&cfg.broker, &client_id, true)?;
    let (tx, rx) = sync_channel(cfg.buffer.max(1));
    let name = format!("mqtt:{}", cfg.topic);
    let session =
        Session::start(opts, 1024, &name, &format!("mqtt-{}", ctx.index), Subscriber { filter, tx })?;
    Ok(vec![Box::new(MqttReader {
        name,
        rx,
        _session: session,
        builder: ctx.builder(),
        template: cfg.topic_template.as_deref().map(TopicTemplate::new),
        received: 0,
        until_idle: UntilIdle::new(cfg.until_idle_ms),
    })])
}

/// What the network loop hands over.
enum Incoming {
    Message(Publish),
    Failed(String),
}

/// The source's side of the session: subscribe on every connection, pass messages on,
/// blocking while the channel is full.
struct Subscriber {
    filter: String,
    tx: SyncSender<Incoming>,
}

impl SessionHandler for Subscriber {
    fn connected(&mut self, client: &Client) -> Flow {
        // Subscribe on every connection, even when the broker kept the session (a
        // connection lost between CONNECT and SUBSCRIBE leaves a session without it).
        match client.try_subscribe(self.filter.as_str(), QoS::AtLeastOnce) {
            Ok(()) => Flow::Continue,
            Err(e) => {
                let _ = self.tx.send(Incoming::Failed(format!("subscribing to {}: {e}", self.filter)));
                Flow::Stop
            }
        }
    }

    fn message(&mut self, p: Publish) -> Flow {
        match self.tx.send(Incoming::Message(p)) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop, // the reader is gone
        }
    }
}

struct MqttReader {
    name: String,
    rx: Receiver<Incoming>,
    /// Ends the network loop when the reader is dropped.
    _session: Session,
    builder: EventBuilder,
    template: Option<TopicTemplate>,
    received: u64,
    until_idle: UntilIdle,
}

impl PartitionReader for MqttReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        let mut got = false;
        for _ in 0..4096 {
            match self.rx.try_recv() {
                Ok(Incoming::Message(p)) => {
                    got = true;
                    self.received += 1;
                    parse_message(
                        &self.name,
                        self.received,
                        &p.topic,
                        &p.payload,
                        self.template.as_ref(),
                        &mut self.builder,
                        out,
                    );
                }
                Ok(Incoming::Failed(msg)) => return Err(SourceError::fatal(&self.name, msg)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(SourceError::fatal(&self.name, "the network thread ended"))
                }
            }
        }
        Ok(if got { self.until_idle.arrived() } else { self.until_idle.nothing() })
    }
}
