//! The MQTT source: each worker's client on a shared subscription, handing messages to the
//! dataflow over a bounded channel. A message is acknowledged only when the reader takes it
//! into the dataflow, so while the graph is behind (the source held back by flow control) the
//! broker's in-flight window for the client fills and the broker keeps the rest; the network
//! thread never blocks on the channel, so the connection stays alive meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;

use rumqttc::{Client, Publish, QoS};
use sensorflow_operators::runtime::probe;
use sensorflow_operators::{PartitionReader, Poll, SourceBatch, SourceError};

use super::session::{Flow, Handover, Session, SessionHandler};
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
    let mut opts = options(&cfg.broker, &client_id, true)?;
    opts.set_manual_acks(true);
    let (tx, rx) = sync_channel(cfg.buffer.max(1));
    let name = format!("mqtt:{}", cfg.topic);
    // Only a broker ignoring the in-flight window could back up 65,536 messages: then the
    // network loop stops reading for a moment rather than grow.
    let connected = Arc::new(AtomicBool::new(false));
    let subscriber = Subscriber { filter, handover: Handover::new(tx, 65_536), connected: connected.clone() };
    let session = Session::start(opts, 1024, &name, &format!("mqtt-{}", ctx.index), subscriber)?;
    Ok(vec![Box::new(MqttReader {
        name,
        rx,
        client: session.client().clone(),
        unacked: VecDeque::new(),
        _session: session,
        builder: ctx.builder(),
        template: cfg.topic_template.as_deref().map(TopicTemplate::new),
        received: 0,
        until_idle: UntilIdle::new(cfg.until_idle_ms),
        connected,
    })])
}

/// What the network loop hands over.
enum Incoming {
    Message(Publish),
    Failed(String),
}

/// The source's side of the session: subscribe on every connection, pass messages on without
/// ever blocking (a full channel leaves them in a backlog the network loop hands over later;
/// unacknowledged, they are at most the broker's in-flight window).
struct Subscriber {
    filter: String,
    handover: Handover<Incoming>,
    /// Whether the session is connected (a disconnected source is not idle).
    connected: Arc<AtomicBool>,
}

impl SessionHandler for Subscriber {
    fn connection_lost(&mut self) {
        self.connected.store(false, Ordering::Relaxed);
    }

    fn connected(&mut self, client: &Client) -> Flow {
        self.connected.store(true, Ordering::Relaxed);
        // Subscribe on every connection, even when the broker kept the session (a
        // connection lost between CONNECT and SUBSCRIBE leaves a session without it).
        match client.try_subscribe(self.filter.as_str(), QoS::AtLeastOnce) {
            Ok(()) => Flow::Continue,
            Err(e) => {
                self.handover.send_now(Incoming::Failed(format!("subscribing to {}: {e}", self.filter)));
                Flow::Stop
            }
        }
    }

    fn message(&mut self, p: Publish) -> Flow {
        self.handover.push(Incoming::Message(p));
        self.handover.drain()
    }

    fn ready(&mut self) -> Flow {
        self.handover.drain()
    }
}

struct MqttReader {
    name: String,
    rx: Receiver<Incoming>,
    /// Acknowledges what the reader took.
    client: Client,
    /// Messages taken whose acknowledgement could not be queued yet.
    unacked: VecDeque<Publish>,
    /// Ends the network loop when the reader is dropped.
    _session: Session,
    builder: EventBuilder,
    template: Option<TopicTemplate>,
    received: u64,
    until_idle: UntilIdle,
    /// Set by the network thread while the session is connected.
    connected: Arc<AtomicBool>,
}

impl PartitionReader for MqttReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        let mut got = false;
        let first = out.events.len();
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
                    self.unacked.push_back(p);
                }
                Ok(Incoming::Failed(msg)) => return Err(SourceError::fatal(&self.name, msg)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(SourceError::fatal(&self.name, "the network thread ended"))
                }
            }
        }
        if let Some(mut r) = probe::recorder(probe::Hop::EngineRead) {
            out.events[first..].iter().for_each(|e| r.record(e.ts, 1));
        }
        // Acknowledge what is now in the dataflow (handed over, not yet processed), through the
        // network thread and never blocking on it: a lost acknowledgement means a re-delivery,
        // which de-duplication drops for payloads that carry a seq.
        while let Some(p) = self.unacked.front() {
            match self.client.try_ack(p) {
                Ok(()) => {
                    self.unacked.pop_front();
                }
                Err(_) => break,
            }
        }
        Ok(if got {
            self.until_idle.arrived()
        } else if !self.connected.load(Ordering::Relaxed) {
            // Cut off from the broker (or not yet connected): what it keeps for this session
            // arrives after the reconnect, so `--until-idle` does not count this time.
            self.until_idle.disconnected()
        } else {
            self.until_idle.nothing()
        })
    }
}
