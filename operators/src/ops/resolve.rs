//! Fills in alert names that were unknown where the alert was made (cluster mode).

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::StreamVec;

use crate::alert::Alert;
use crate::names::Dictionary;
use crate::ops::{hold, Held};
use crate::rules::Control;

/// Extension trait: resolve alert names from the names on the control stream.
pub trait ResolveNames<'scope> {
    /// Holds each alert until the control stream (which carries every process's
    /// [`Control::DeviceName`] and [`Control::MetricName`] records, at times no later than the
    /// events that introduced them) has passed the alert's time, then replaces any name still
    /// shown as a hex id with the real one.
    fn resolve_names(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        dict: Dictionary,
    ) -> StreamVec<'scope, u64, Alert>;
}

impl<'scope> ResolveNames<'scope> for StreamVec<'scope, u64, Alert> {
    fn resolve_names(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        dict: Dictionary,
    ) -> StreamVec<'scope, u64, Alert> {
        self.binary_frontier(control, Pipeline, Pipeline, "ResolveNames", move |_cap, _info| {
            let mut held: Held<Alert> = BTreeMap::new();
            move |(alerts, _af), (ctl, cf), output| {
                alerts.for_each_stamp(|cap, data| hold(&mut held, cap, data));
                ctl.for_each_stamp(|_cap, data| {
                    for batch in data {
                        for (change, _, diff) in batch.drain(..) {
                            match change {
                                Control::DeviceName(n) if diff > 0 => {
                                    dict.device(&n);
                                }
                                Control::MetricName(n) if diff > 0 => {
                                    dict.metric(&n);
                                }
                                _ => {}
                            }
                        }
                    }
                });
                while let Some((&t, _)) = held.first_key_value() {
                    if cf.less_equal(&t) {
                        break;
                    }
                    let Some((_, (cap, mut batch))) = held.pop_first() else { break };
                    for a in &mut batch {
                        if a.device.starts_with('#') {
                            a.device = dict.device_name(a.key.device);
                        }
                        if a.metric.starts_with('#') {
                            a.metric = dict.metric_name(a.metric_id);
                        }
                    }
                    output.session(&cap).give_container(&mut batch);
                }
            }
        })
    }
}
