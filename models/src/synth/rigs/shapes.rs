//! The four rig shapes: their latent operating variables ([`Driver`]), their sensors
//! ([`SensorSpec`]: noise and first-order lag) and the physical relations that turn the
//! latent variables into each sensor's noise-free target (one function per rig), and the
//! physical fault mechanisms each rig can suffer ([`Mechanism`]).
//!
//! The relations are plausible, not calibrated to a real machine: motor current grows with
//! hydraulic power (flow × head), bearing and winding temperatures follow current and ambient
//! through first-order lags, vibration RMS grows with speed², flow and head meet where the
//! pump curve crosses the system curve, an HVAC unit's return − supply difference and its
//! chilled-water valve follow the load. The pump, line and compressor stand indoors (a small
//! daily ambient swing); the HVAC unit's outdoor temperature swings 12 °C a day.

use super::FaultKind;

/// How one latent operating variable evolves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Driver {
    /// Set-point steps: at exponential intervals (mean `mean_gap_min` minutes) a new target
    /// drawn uniformly from `levels`, approached as a ramp of at most `ramp_per_min` per
    /// minute, plus a slow mean-reverting wobble (time constant 10 min, deviation `wobble`).
    Steps {
        /// The set-points.
        levels: &'static [f64],
        /// Mean minutes between set-point changes.
        mean_gap_min: f64,
        /// Largest change per minute while ramping.
        ramp_per_min: f64,
        /// Stationary deviation of the wobble around the set-point.
        wobble: f64,
    },
    /// A daily cycle (`mean + amplitude · sin`, lowest near 03:00 and highest near 15:00 UTC)
    /// plus mean-reverting weather (time constant 3 h, stationary deviation `wander`).
    Daily {
        /// Daily mean.
        mean: f64,
        /// Half the daily swing.
        amplitude: f64,
        /// Stationary deviation of the weather.
        wander: f64,
    },
}

/// One sensor of a rig.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensorSpec {
    /// Column name (unit as suffix).
    pub name: &'static str,
    /// Deviation of the sensor's white noise (σ; fault sizes are in units of it).
    pub noise: f64,
    /// Time constant of the first-order lag between the target and the reading (seconds),
    /// `None` for a sensor that follows its target at once.
    pub lag_s: Option<f64>,
}

/// A physical fault mechanism: its kind and the sensors it moves, each with a direction
/// (+1 up, −1 down). Every affected sensor moves by the fault's size in its own σ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mechanism {
    /// Kind ([`FaultKind::Wear`], `Clogging`, `Fouling` or `Leak`).
    pub kind: FaultKind,
    /// (sensor name, direction).
    pub effects: &'static [(&'static str, f64)],
}

/// Everything that defines one rig shape.
#[derive(Clone, Copy, Debug)]
pub struct RigSpec {
    /// Name (`pump`, `hvac`, `line`, `compressor`).
    pub name: &'static str,
    /// What the rig is.
    pub about: &'static str,
    /// Sample interval, ms.
    pub interval_ms: u64,
    /// Rows per run.
    pub rows: usize,
    /// Faults per run (one per equal slot after the warm-up).
    pub faults: usize,
    /// Fault durations, minutes (log-uniform between the two; at most half a slot).
    pub fault_minutes: (f64, f64),
    /// Latent operating variables (name, driver).
    pub latents: &'static [(&'static str, Driver)],
    /// Sensors, in column order.
    pub sensors: &'static [SensorSpec],
    /// Physical fault mechanisms.
    pub mechanisms: &'static [Mechanism],
    /// Noise-free targets of every sensor from the latent values (same order as `sensors`).
    pub targets: fn(&[f64], &mut [f64]),
}

const fn sensor(name: &'static str, noise: f64, lag_s: Option<f64>) -> SensorSpec {
    SensorSpec { name, noise, lag_s }
}

const MIN: f64 = 60.0;

/// A centrifugal pump on a variable-speed drive, 1 s samples.
pub const PUMP: RigSpec = RigSpec {
    name: "pump",
    about: "variable-speed centrifugal pump and motor (speed and discharge valve set-points)",
    interval_ms: 1_000,
    rows: 36_000,
    faults: 8,
    fault_minutes: (2.0, 30.0),
    latents: &[
        (
            "speed",
            Driver::Steps {
                levels: &[0.6, 0.7, 0.8, 0.9, 1.0],
                mean_gap_min: 12.0,
                ramp_per_min: 0.1,
                wobble: 0.01,
            },
        ),
        (
            "valve",
            Driver::Steps {
                levels: &[0.5, 0.65, 0.8, 1.0],
                mean_gap_min: 20.0,
                ramp_per_min: 0.2,
                wobble: 0.01,
            },
        ),
        ("ambient", Driver::Daily { mean: 20.0, amplitude: 2.0, wander: 0.5 }),
    ],
    sensors: &[
        sensor("speed_rpm", 4.0, None),
        sensor("flow_m3h", 0.5, None),
        sensor("suction_bar", 0.01, None),
        sensor("discharge_bar", 0.03, None),
        sensor("motor_current_a", 0.3, None),
        sensor("bearing_temp_c", 0.15, Some(15.0 * MIN)),
        sensor("vibration_mm_s", 0.05, None),
        sensor("winding_temp_c", 0.2, Some(20.0 * MIN)),
    ],
    mechanisms: &[
        Mechanism { kind: FaultKind::Wear, effects: &[("vibration_mm_s", 1.0), ("bearing_temp_c", 1.0)] },
        Mechanism {
            kind: FaultKind::Clogging,
            effects: &[("flow_m3h", -1.0), ("discharge_bar", 1.0), ("motor_current_a", 1.0)],
        },
    ],
    targets: pump,
};

fn pump(l: &[f64], t: &mut [f64]) {
    let (s, valve, ambient) = (l[0], l[1].max(0.2), l[2]);
    // System curve head = r·q², pump curve head = 6·s² − 1.5·q² (bar, q normalised flow).
    let r = 3.0 / (valve * valve);
    let q = s * (6.0 / (1.5 + r)).sqrt();
    let head = r * q * q;
    let suction = 1.2 - 0.05 * q * q;
    let current = 12.0 + 6.0 * q * head;
    t[0] = 1480.0 * s;
    t[1] = 40.0 * q;
    t[2] = suction;
    t[3] = suction + head;
    t[4] = current;
    t[5] = ambient + 0.5 * current + 8.0 * s * s;
    t[6] = 0.3 + 1.2 * s * s;
    t[7] = ambient + 0.9 * current;
}

/// An air-handling unit with a chilled-water coil, 60 s samples.
pub const HVAC: RigSpec = RigSpec {
    name: "hvac",
    about: "air-handling unit: fan, chilled-water coil and valve, outdoor and zone conditions",
    interval_ms: 60_000,
    rows: 10_080,
    faults: 12,
    fault_minutes: (10.0, 120.0),
    latents: &[
        ("ambient", Driver::Daily { mean: 24.0, amplitude: 6.0, wander: 1.5 }),
        (
            "load",
            Driver::Steps {
                levels: &[0.2, 0.4, 0.6, 0.8, 1.0],
                mean_gap_min: 120.0,
                ramp_per_min: 0.05,
                wobble: 0.03,
            },
        ),
        (
            "supply_setpoint",
            Driver::Steps {
                levels: &[12.0, 13.0, 14.0],
                mean_gap_min: 720.0,
                ramp_per_min: 0.05,
                wobble: 0.0,
            },
        ),
    ],
    sensors: &[
        sensor("outdoor_temp_c", 0.2, None),
        sensor("return_air_c", 0.1, Some(30.0 * MIN)),
        sensor("supply_air_c", 0.1, Some(5.0 * MIN)),
        sensor("fan_speed_pct", 0.5, None),
        sensor("airflow_m3s", 0.05, None),
        sensor("fan_power_kw", 0.05, None),
        sensor("valve_pct", 0.8, None),
        sensor("chw_supply_c", 0.05, None),
        sensor("chw_return_c", 0.05, Some(3.0 * MIN)),
        sensor("zone_humidity_pct", 0.5, Some(20.0 * MIN)),
    ],
    mechanisms: &[
        Mechanism { kind: FaultKind::Clogging, effects: &[("airflow_m3s", -1.0), ("fan_power_kw", 1.0)] },
        Mechanism {
            kind: FaultKind::Fouling,
            effects: &[("supply_air_c", 1.0), ("valve_pct", 1.0), ("chw_return_c", -1.0)],
        },
    ],
    targets: hvac,
};

fn hvac(l: &[f64], t: &mut [f64]) {
    let (ambient, load, setpoint) = (l[0], l[1], l[2]);
    let fan = 40.0 + 50.0 * load;
    let airflow = 0.05 * fan;
    let ret = 22.0 + 0.08 * (ambient - 24.0) + 1.5 * load;
    let supply = setpoint + 0.05 * (ambient - 24.0);
    // Coil duty ∝ airflow × (return − supply); the valve opens with it.
    let valve = (1.6 * airflow * (ret - supply)).clamp(0.0, 100.0);
    t[0] = ambient;
    t[1] = ret;
    t[2] = supply;
    t[3] = fan;
    t[4] = airflow;
    t[5] = 8.0 * (fan / 100.0).powi(3);
    t[6] = valve;
    t[7] = 7.0 + 0.02 * valve;
    t[8] = t[7] + 0.06 * valve;
    t[9] = 45.0 + 0.3 * (ambient - 24.0) + 5.0 * load - 0.05 * valve;
}

/// A plastics extrusion line, 5 s samples.
pub const LINE: RigSpec = RigSpec {
    name: "line",
    about: "extrusion line: screw and motor, melt pressure and temperature, two heated zones",
    interval_ms: 5_000,
    rows: 17_280,
    faults: 10,
    fault_minutes: (2.0, 30.0),
    latents: &[
        (
            "speed",
            Driver::Steps { levels: &[0.5, 0.75, 1.0], mean_gap_min: 45.0, ramp_per_min: 0.05, wobble: 0.01 },
        ),
        (
            "material",
            Driver::Steps { levels: &[0.8, 1.0, 1.2], mean_gap_min: 60.0, ramp_per_min: 0.02, wobble: 0.02 },
        ),
        ("ambient", Driver::Daily { mean: 22.0, amplitude: 1.5, wander: 0.5 }),
    ],
    sensors: &[
        sensor("line_speed_m_min", 0.1, None),
        sensor("feed_rate_kg_h", 1.0, None),
        sensor("screw_rpm", 0.3, None),
        sensor("motor_torque_pct", 0.5, None),
        sensor("motor_current_a", 0.4, None),
        sensor("melt_pressure_bar", 0.8, None),
        sensor("melt_temp_c", 0.2, Some(4.0 * MIN)),
        sensor("zone1_temp_c", 0.2, Some(10.0 * MIN)),
        sensor("zone2_temp_c", 0.2, Some(10.0 * MIN)),
        sensor("heater1_kw", 0.15, Some(3.0 * MIN)),
        sensor("heater2_kw", 0.15, Some(3.0 * MIN)),
        sensor("thickness_mm", 0.01, None),
    ],
    mechanisms: &[
        Mechanism {
            kind: FaultKind::Wear,
            effects: &[("melt_pressure_bar", -1.0), ("motor_torque_pct", 1.0), ("melt_temp_c", 1.0)],
        },
        Mechanism {
            kind: FaultKind::Clogging,
            effects: &[("melt_pressure_bar", 1.0), ("feed_rate_kg_h", -1.0), ("motor_current_a", 1.0)],
        },
    ],
    targets: line,
};

fn line(l: &[f64], t: &mut [f64]) {
    let (s, m, ambient) = (l[0], l[1], l[2]);
    let torque = 25.0 + 45.0 * m * s.max(0.0).sqrt();
    let cold = ambient - 22.0;
    t[0] = 30.0 * s;
    t[1] = 200.0 * s * (0.9 + 0.1 * m);
    t[2] = 60.0 * s * (0.8 + 0.2 * m);
    t[3] = torque;
    t[4] = 20.0 + 0.8 * torque * s.max(0.0).sqrt();
    t[5] = 60.0 + 80.0 * m * s;
    t[6] = 205.0 + 6.0 * s * m + 0.1 * cold;
    t[7] = 200.0 + 2.0 * s * m + 0.15 * cold;
    t[8] = 210.0 + 3.0 * s * m + 0.1 * cold;
    t[9] = 14.0 - 4.0 * s * m - 0.3 * cold;
    t[10] = 12.0 - 5.0 * s * m - 0.3 * cold;
    t[11] = 2.0 + 0.15 * (m - 1.0) - 0.1 * (s - 0.75);
}

/// A variable-speed screw air compressor, 10 s samples.
pub const COMPRESSOR: RigSpec = RigSpec {
    name: "compressor",
    about: "variable-speed screw air compressor following the plant's air demand",
    interval_ms: 10_000,
    rows: 17_280,
    faults: 12,
    fault_minutes: (2.0, 30.0),
    latents: &[
        (
            "demand",
            Driver::Steps {
                levels: &[0.3, 0.5, 0.7, 0.9],
                mean_gap_min: 60.0,
                ramp_per_min: 0.1,
                wobble: 0.03,
            },
        ),
        (
            "pressure_setpoint",
            Driver::Steps { levels: &[7.0, 7.5], mean_gap_min: 600.0, ramp_per_min: 0.1, wobble: 0.0 },
        ),
        ("ambient", Driver::Daily { mean: 18.0, amplitude: 3.0, wander: 0.7 }),
    ],
    sensors: &[
        sensor("discharge_bar", 0.03, None),
        sensor("motor_speed_rpm", 5.0, None),
        sensor("motor_current_a", 0.8, None),
        sensor("airflow_m3min", 0.2, None),
        sensor("discharge_temp_c", 0.3, Some(10.0 * MIN)),
        sensor("oil_temp_c", 0.2, Some(25.0 * MIN)),
        sensor("vibration_mm_s", 0.1, None),
    ],
    mechanisms: &[
        Mechanism { kind: FaultKind::Wear, effects: &[("vibration_mm_s", 1.0), ("oil_temp_c", 1.0)] },
        Mechanism {
            kind: FaultKind::Leak,
            effects: &[("motor_current_a", 1.0), ("motor_speed_rpm", 1.0), ("discharge_bar", -1.0)],
        },
    ],
    targets: compressor,
};

fn compressor(l: &[f64], t: &mut [f64]) {
    let (d, p, ambient) = (l[0], l[1], l[2]);
    let speed = 0.4 + 0.6 * d;
    t[0] = p - 0.3 * d;
    t[1] = 3000.0 * speed;
    t[2] = 40.0 + 80.0 * d * p / 7.0;
    t[3] = 20.0 * speed;
    t[4] = ambient + 55.0 + 25.0 * d * p / 7.0;
    t[5] = ambient + 35.0 + 20.0 * d;
    t[6] = 1.0 + 3.0 * speed * speed;
}
