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
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use sensorflow_operators::*;
    ///
    /// // This process never read "pump-7", so its alert names the device by its id in hex ...
    /// let dict = Dictionary::default();
    /// let (pump, temp) = (DeviceId::of("pump-7"), dict.metric("temp"));
    /// let alert = Alert {
    ///     key: AlertKey { device: pump, source: Arc::from("hot"), window_start: 0 },
    ///     kind: AlertKind::Fired,
    ///     device: dict.device_name(pump),
    ///     metric_id: temp,
    ///     metric: dict.metric_name(temp),
    ///     value: 90.0,
    ///     threshold: 80.0,
    ///     condition: Arc::from("max > 80"),
    ///     window_start: 0,
    ///     window_end: 1000,
    ///     severity: Arc::from("warning"),
    ///     site: None,
    ///     owner: None,
    ///     early_at: None,
    /// };
    /// assert!(alert.device.starts_with('#'));
    /// // ... until the control stream brings the name a peer process read.
    /// let out = timely::example(move |scope| {
    ///     let names = vec![(Control::DeviceName("pump-7".into()), 0u64, 1isize)];
    ///     let names = names.to_stream(scope).container::<Vec<_>>();
    ///     vec![alert].to_stream(scope).container::<Vec<_>>().resolve_names(names, dict).capture()
    /// });
    /// let alerts: Vec<Alert> = sensorflow_operators::testing::captured(&out);
    /// let names: Vec<(&str, &str)> = alerts.iter().map(|a| (a.device.as_ref(), a.metric.as_ref())).collect();
    /// assert_eq!(names, vec![("pump-7", "temp")]);
    /// ```
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
