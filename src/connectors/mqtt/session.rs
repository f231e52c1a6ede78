//! The one MQTT event loop. Every client here (the source's subscribers, the publisher behind
//! the alert sink and the simulator, the bridge's subscriber) is a [`Session`]: rumqttc's
//! connection polled on a thread of its own, reconnecting with exponential backoff (100 ms
//! doubling to 5 s) and handing what arrives to a [`SessionHandler`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, Publish, RecvTimeoutError};

use super::options;
use crate::connectors::ConnectorError;

/// Whether the event loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Hold off reading the network for a moment (the owner has a backlog to hand over).
    Wait,
    /// End the session.
    Stop,
}

/// Hands what the network thread receives to its consumer over a bounded channel without ever
/// blocking on it (a blocked network thread sends no keep-alives and no acknowledgements):
/// what the channel cannot take waits in a backlog, handed over on the next [`Handover::drain`].
#[derive(Debug)]
pub struct Handover<T> {
    tx: SyncSender<T>,
    backlog: VecDeque<T>,
    /// Backlog length past which the network loop stops reading for a moment.
    limit: usize,
}

impl<T> Handover<T> {
    /// Hands over on `tx`, asking the loop to wait once `limit` items are backed up.
    pub fn new(tx: SyncSender<T>, limit: usize) -> Self {
        Handover { tx, backlog: VecDeque::new(), limit }
    }

    /// Queues `item` behind the backlog (handed over by the next [`Handover::drain`]).
    pub fn push(&mut self, item: T) {
        self.backlog.push_back(item);
    }

    /// Hands `item` over now, waiting for room: for a last word before the session stops.
    pub fn send_now(&mut self, item: T) {
        let _ = self.tx.send(item);
    }

    /// Hands over as much of the backlog as the channel takes: [`Flow::Stop`] once the consumer
    /// is gone, [`Flow::Wait`] while the backlog is at its limit.
    pub fn drain(&mut self) -> Flow {
        while let Some(m) = self.backlog.pop_front() {
            match self.tx.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.backlog.push_front(m);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return Flow::Stop,
            }
        }
        if self.backlog.len() >= self.limit {
            Flow::Wait
        } else {
            Flow::Continue
        }
    }
}

/// What a session's owner does with what arrives. Every method runs on the session's thread.
pub trait SessionHandler: Send + 'static {
    /// After every (re)connection: subscribe here.
    fn connected(&mut self, _client: &Client) -> Flow {
        Flow::Continue
    }

    /// A message from a subscription.
    fn message(&mut self, _p: Publish) -> Flow {
        Flow::Continue
    }

    /// The broker acknowledged a QoS 1 publish.
    fn acked(&mut self) {}

    /// The broker confirmed a subscription.
    fn subscribed(&mut self) {}

    /// The connection failed; the session reconnects after a backoff.
    fn connection_lost(&mut self) {}

    /// Before each wait for the network.
    fn ready(&mut self) -> Flow {
        Flow::Continue
    }
}

/// A client whose connection is driven by its own thread until the session is dropped.
pub struct Session {
    client: Client,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mqtt::Session")
    }
}

impl Session {
    /// Connects with `opts` (`capacity`: requests the client queues before `publish` blocks)
    /// and runs `handler` on a thread called `thread`; `name` prefixes log lines.
    pub fn start(
        opts: MqttOptions,
        capacity: usize,
        name: &str,
        thread: &str,
        handler: impl SessionHandler,
    ) -> Result<Self, ConnectorError> {
        let (client, connection) = Client::new(opts, capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s, n) = (client.clone(), stop.clone(), name.to_string());
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || event_loop(connection, c, handler, s, n))
            .map_err(|e| ConnectorError::System(format!("mqtt: cannot start a thread: {e}")))?;
        Ok(Session { client, stop })
    }

    /// The client, for publishing, acknowledging and subscribing.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

fn event_loop(
    mut connection: Connection,
    client: Client,
    mut handler: impl SessionHandler,
    stop: Arc<AtomicBool>,
    name: String,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match handler.ready() {
            Flow::Stop => break,
            Flow::Wait => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Flow::Continue => {}
        }
        // Long enough that a connection handshake is never cut short (rumqttc's poll is not
        // cancel-safe while connecting), short enough to notice a stop or hand over a backlog.
        let flow = match connection.recv_timeout(Duration::from_millis(250)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                backoff = Duration::from_millis(100);
                failures = 0;
                handler.connected(&client)
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => handler.message(p),
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                handler.acked();
                Flow::Continue
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                handler.subscribed();
                Flow::Continue
            }
            Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => Flow::Continue,
            Err(RecvTimeoutError::Disconnected) => Flow::Stop,
            Ok(Err(e)) => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!("{name}: {e}; reconnecting in {backoff:?} (attempt {failures})");
                }
                handler.connection_lost();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                Flow::Continue
            }
        };
        if flow == Flow::Stop {
            break;
        }
    }
    let _ = client.try_disconnect();
}

/// Deletes a persistent session from the broker by connecting once with a clean session
/// (best effort: a broker that is down keeps it until it expires).
pub fn forget(broker: &str, client_id: &str) {
    let Ok(opts) = options(broker, client_id, false) else { return };
    let (client, mut conn) = Client::new(opts, 10);
    for _ in 0..3 {
        match conn.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                let _ = client.try_disconnect();
                let _ = conn.recv_timeout(Duration::from_millis(100));
                return;
            }
            Ok(Ok(_)) => {}
            _ => return,
        }
    }
}
