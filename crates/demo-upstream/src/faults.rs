//! Injectable faults. Rates are decided per request from one seeded
//! generator, drawing the same number of values for every request whatever
//! the settings, so a given sequence of requests meets the same faults on
//! every run.

use serde::{Deserialize, Serialize};

use super::synth::SplitMix;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSettings {
    /// Fraction of list-API and CDN requests answered 500.
    pub error_rate: f64,
    /// Delay between 64 KiB chunks of CDN bodies.
    pub slow_body_ms: u64,
    /// Fraction of CDN bodies cut at half while announcing the full length.
    pub truncate_rate: f64,
    /// Fraction of CDN bodies cut 100 bytes short, announcing the short length.
    pub wrong_length_rate: f64,
    /// Fraction of CDN requests answered 403 as for an expired URL.
    pub expired_rate: f64,
    /// Fraction of list-API and CDN requests answered 429 (`Retry-After: 1`).
    pub rate_limit_rate: f64,
    /// The list API answers 401 SESSION_EXPIRED.
    pub session_expired: bool,
    /// The first N CDN fetches of each rendition answer 500.
    pub fail_first: u32,
    /// List-media pages from this offset on are held (not answered) while
    /// it is set, for at most [`HOLD_MAX`]; 0: none. Lets a test look at a
    /// sync between its pages.
    pub hold_list_from: u64,
}

/// Longest a held list page waits before it is answered anyway.
pub const HOLD_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// A partial update (`PUT /_demo/faults`); absent fields keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultPatch {
    #[serde(alias = "error_rate")]
    pub error_rate: Option<f64>,
    #[serde(alias = "slow_body_ms")]
    pub slow_body_ms: Option<u64>,
    #[serde(alias = "truncate_rate")]
    pub truncate_rate: Option<f64>,
    #[serde(alias = "wrong_length_rate")]
    pub wrong_length_rate: Option<f64>,
    #[serde(alias = "expired_rate")]
    pub expired_rate: Option<f64>,
    #[serde(alias = "rate_limit_rate")]
    pub rate_limit_rate: Option<f64>,
    #[serde(alias = "session_expired")]
    pub session_expired: Option<bool>,
    #[serde(alias = "fail_first")]
    pub fail_first: Option<u32>,
    #[serde(alias = "hold_list_from")]
    pub hold_list_from: Option<u64>,
    /// Restarts the fault generator from this seed.
    pub seed: Option<u64>,
}

impl FaultPatch {
    /// Checks every rate before anything is applied, so a bad request
    /// changes nothing.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("errorRate", self.error_rate),
            ("truncateRate", self.truncate_rate),
            ("wrongLengthRate", self.wrong_length_rate),
            ("expiredRate", self.expired_rate),
            ("rateLimitRate", self.rate_limit_rate),
        ];
        for (name, v) in rates {
            if let Some(v) = v {
                check_rate(v).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        Ok(())
    }

    pub fn apply(&self, f: &mut FaultSettings) {
        let set = |dst: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut f.error_rate, self.error_rate);
        set(&mut f.truncate_rate, self.truncate_rate);
        set(&mut f.wrong_length_rate, self.wrong_length_rate);
        set(&mut f.expired_rate, self.expired_rate);
        set(&mut f.rate_limit_rate, self.rate_limit_rate);
        if let Some(v) = self.slow_body_ms {
            f.slow_body_ms = v;
        }
        if let Some(v) = self.session_expired {
            f.session_expired = v;
        }
        if let Some(v) = self.fail_first {
            f.fail_first = v;
        }
        if let Some(v) = self.hold_list_from {
            f.hold_list_from = v;
        }
    }
}

pub fn check_rate(v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be a fraction from 0 to 1, got {v}"))
    }
}

/// What the list API does with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiFault {
    None,
    SessionExpired,
    RateLimited,
    Error,
}

/// What the CDN does with one request (after its URL checked out).
#[derive(Debug, PartialEq, Eq)]
pub enum CdnFault {
    None,
    RateLimited,
    Error,
    Expired,
    /// Announce the full length, close after half.
    Truncate,
    /// Send and announce 100 bytes fewer than the listing's `size`.
    WrongLength,
}

/// The generator and the rule for turning its draws into faults.
pub struct Dice {
    rng: SplitMix,
}

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix::new(seed),
        }
    }

    fn roll(&mut self, rate: f64) -> bool {
        // Always draw, so a rate of 0 does not shift later decisions.
        self.rng.next_f64() < rate
    }

    pub fn api(&mut self, f: &FaultSettings) -> ApiFault {
        let limited = self.roll(f.rate_limit_rate);
        let error = self.roll(f.error_rate);
        if f.session_expired {
            ApiFault::SessionExpired
        } else if limited {
            ApiFault::RateLimited
        } else if error {
            ApiFault::Error
        } else {
            ApiFault::None
        }
    }

    pub fn cdn(&mut self, f: &FaultSettings) -> CdnFault {
        let draws = [
            (self.roll(f.rate_limit_rate), CdnFault::RateLimited),
            (self.roll(f.error_rate), CdnFault::Error),
            (self.roll(f.expired_rate), CdnFault::Expired),
            (self.roll(f.truncate_rate), CdnFault::Truncate),
            (self.roll(f.wrong_length_rate), CdnFault::WrongLength),
        ];
        draws
            .into_iter()
            .find(|(hit, _)| *hit)
            .map_or(CdnFault::None, |(_, fault)| fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let f = FaultSettings {
            error_rate: 0.3,
            truncate_rate: 0.3,
            ..Default::default()
        };
        let (mut a, mut b) = (Dice::new(1), Dice::new(1));
        let run = |d: &mut Dice| (0..200).map(|_| d.cdn(&f)).collect::<Vec<_>>();
        let (ra, rb) = (run(&mut a), run(&mut b));
        assert_eq!(ra, rb);
        assert!(ra.contains(&CdnFault::Error) && ra.contains(&CdnFault::None));
    }

    #[test]
    fn rates_of_zero_and_one_are_exact() {
        let mut d = Dice::new(3);
        let none = FaultSettings::default();
        assert!((0..100).all(|_| d.cdn(&none) == CdnFault::None));
        let all = FaultSettings {
            expired_rate: 1.0,
            ..Default::default()
        };
        assert!((0..100).all(|_| d.cdn(&all) == CdnFault::Expired));
    }

    #[test]
    fn patch_validates_then_applies_only_given_fields() {
        let bad: FaultPatch = serde_json::from_str(r#"{"errorRate":1.5}"#).expect("json");
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<FaultPatch>(r#"{"nope":1}"#).is_err());
        let p: FaultPatch =
            serde_json::from_str(r#"{"truncateRate":0.5,"fail_first":2}"#).expect("json");
        p.validate().expect("valid");
        let mut f = FaultSettings {
            error_rate: 0.1,
            ..Default::default()
        };
        p.apply(&mut f);
        assert_eq!((f.error_rate, f.truncate_rate, f.fail_first), (0.1, 0.5, 2));
    }
}
