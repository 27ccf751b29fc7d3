//! Operating hours: when a queue's agents work, in the queue's IANA time zone, with
//! holidays. Pure: "is it open at `t`" reads no clock.

use std::collections::BTreeSet;
use std::time::SystemTime;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// A zone name that is not in the time-zone database.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {zone:?}")]
#[non_exhaustive]
pub struct HoursError {
    /// The name given.
    pub zone: String,
    /// Why the database refused it.
    #[source]
    pub source: jiff::Error,
}

/// One shift of a week: on `day`, from `start` to `end` (local time; past midnight when
/// `end` is at or before `start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shift {
    /// The weekday it starts on.
    pub day: Weekday,
    /// When it starts.
    pub start: Time,
    /// When it ends (the next day when at or before `start`).
    pub end: Time,
}

impl Shift {
    /// Whether it runs past midnight.
    fn crosses_midnight(self) -> bool {
        self.end <= self.start
    }

    /// Whether it covers `time` of the day it starts on.
    fn covers_first_day(self, time: Time) -> bool {
        self.start <= time && (self.crosses_midnight() || time < self.end)
    }

    /// Whether it covers `time` of the day after it starts.
    fn covers_next_day(self, time: Time) -> bool {
        self.crosses_midnight() && time < self.end
    }
}

/// When a queue is open: weekly shifts and holidays in an IANA time zone.
///
/// The rules, on local (wall-clock) time in the zone:
/// - a shift runs on a weekday from `start` to `end`; an `end` at or before `start` runs past
///   midnight into the next day (an `end` equal to `start`: 24 hours);
/// - a holiday closes its whole local date, and the shift that starts on it (also the part
///   past midnight); a shift that starts the day before runs until midnight;
/// - across a daylight-saving change, wall-clock times count: a shift from 01:00 to 04:00 on
///   the night clocks go forward lasts two hours.
///
/// ```
/// use std::time::SystemTime;
/// use messenger_channel::routing::{Date, OperatingHours, Time, Weekday};
///
/// let hours = OperatingHours::new("Europe/Paris")?
///     .weekdays(Time::constant(9, 0, 0, 0), Time::constant(18, 0, 0, 0))
///     .holiday(Date::constant(2026, 12, 25));
/// // Tuesday 1 December 2026, 09:30 in Paris (08:30 UTC).
/// let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_113_800);
/// assert!(hours.is_open(at));
/// # Ok::<(), messenger_channel::routing::HoursError>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "HoursSpec", into = "HoursSpec")]
pub struct OperatingHours {
    zone: String,
    tz: TimeZone,
    shifts: Vec<Shift>,
    holidays: BTreeSet<Date>,
}

impl PartialEq for OperatingHours {
    fn eq(&self, other: &Self) -> bool {
        (&self.zone, &self.shifts, &self.holidays) == (&other.zone, &other.shifts, &other.holidays)
    }
}

impl Eq for OperatingHours {}

impl OperatingHours {
    /// Hours in the IANA zone `zone` (`Europe/Paris`, `America/New_York`, `UTC`), with no
    /// shift yet (never open). The zone is read from the system's time-zone database
    /// (`/usr/share/zoneinfo`; bundled on Windows).
    ///
    /// # Errors
    /// [`HoursError`] when the database has no such zone.
    pub fn new(zone: &str) -> Result<Self, HoursError> {
        let tz = TimeZone::get(zone).map_err(|source| HoursError {
            zone: zone.to_owned(),
            source,
        })?;
        Ok(Self {
            zone: zone.to_owned(),
            tz,
            shifts: Vec::new(),
            holidays: BTreeSet::new(),
        })
    }

    /// Adds a shift on `day` from `start` to `end` (past midnight when `end` is at or before
    /// `start`).
    #[must_use]
    pub fn shift(mut self, day: Weekday, start: Time, end: Time) -> Self {
        self.shifts.push(Shift { day, start, end });
        self
    }

    /// Adds the same shift Monday to Friday.
    #[must_use]
    pub fn weekdays(self, start: Time, end: Time) -> Self {
        [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]
        .into_iter()
        .fold(self, |hours, day| hours.shift(day, start, end))
    }

    /// Closes a local date.
    #[must_use]
    pub fn holiday(mut self, date: Date) -> Self {
        self.holidays.insert(date);
        self
    }

    /// The zone's name.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The shifts.
    pub fn shifts(&self) -> &[Shift] {
        &self.shifts
    }

    /// The holidays.
    pub fn holidays(&self) -> impl Iterator<Item = &Date> {
        self.holidays.iter()
    }

    /// Whether the queue is open at `at` (see [`OperatingHours`] for the rules). A
    /// time outside what the calendar can name (beyond the year 9999) is closed.
    pub fn is_open(&self, at: SystemTime) -> bool {
        jiff::Timestamp::try_from(at).is_ok_and(|ts| self.is_open_local(self.tz.to_datetime(ts)))
    }

    /// Whether the queue is open at the local date and time `local`.
    pub fn is_open_local(&self, local: DateTime) -> bool {
        let (date, time) = (local.date(), local.time());
        if self.holidays.contains(&date) {
            return false;
        }
        let yesterday = date.yesterday().ok().filter(|d| !self.holidays.contains(d));
        self.shifts.iter().any(|s| {
            (s.day == date.weekday() && s.covers_first_day(time))
                || yesterday.is_some_and(|y| s.day == y.weekday() && s.covers_next_day(time))
        })
    }
}

/// What [`OperatingHours`] is saved as.
#[derive(Serialize, Deserialize)]
struct HoursSpec {
    zone: String,
    shifts: Vec<ShiftSpec>,
    #[serde(default)]
    holidays: Vec<Date>,
}

#[derive(Serialize, Deserialize)]
struct ShiftSpec {
    /// 1 (Monday) to 7 (Sunday).
    day: i8,
    start: Time,
    end: Time,
}

impl From<OperatingHours> for HoursSpec {
    fn from(hours: OperatingHours) -> Self {
        Self {
            zone: hours.zone,
            shifts: hours
                .shifts
                .into_iter()
                .map(|s| ShiftSpec {
                    day: s.day.to_monday_one_offset(),
                    start: s.start,
                    end: s.end,
                })
                .collect(),
            holidays: hours.holidays.into_iter().collect(),
        }
    }
}

impl TryFrom<HoursSpec> for OperatingHours {
    type Error = String;

    fn try_from(spec: HoursSpec) -> Result<Self, String> {
        let mut hours = Self::new(&spec.zone).map_err(|e| e.to_string())?;
        for s in spec.shifts {
            let day = Weekday::from_monday_one_offset(s.day)
                .map_err(|e| format!("shift day {}: {e}", s.day))?;
            hours = hours.shift(day, s.start, s.end);
        }
        hours.holidays.extend(spec.holidays);
        Ok(hours)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::civil::{date, time};

    use super::*;

    fn t(h: i8, m: i8) -> Time {
        time(h, m, 0, 0)
    }

    /// The instant of a local wall-clock time in `zone` (the earlier one when ambiguous).
    fn instant(zone: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> SystemTime {
        let tz = TimeZone::get(zone).unwrap();
        let ts = tz
            .to_ambiguous_timestamp(date(y, mo, d).at(h, mi, 0, 0))
            .compatible()
            .unwrap();
        SystemTime::try_from(ts).unwrap()
    }

    /// Tuesday to Saturday nights, 22:00 to 02:00, in New York; Christmas day closed.
    fn nights() -> OperatingHours {
        let mut h = OperatingHours::new("America/New_York").unwrap();
        for day in [
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
        ] {
            h = h.shift(day, t(22, 0), t(2, 0));
        }
        h.holiday(date(2026, 12, 25))
    }

    #[test]
    fn an_unknown_zone_is_refused() {
        let e = OperatingHours::new("Mars/Olympus_Mons").unwrap_err();
        assert_eq!(e.zone, "Mars/Olympus_Mons");
        assert!(e.to_string().contains("Mars/Olympus_Mons"));
    }

    #[test]
    fn a_day_shift_is_open_from_its_start_to_before_its_end() {
        let h = OperatingHours::new("Europe/Paris")
            .unwrap()
            .weekdays(t(9, 0), t(18, 0));
        // Tuesday 1 December 2026, Paris is UTC+1.
        let at = |hh, mm| instant("Europe/Paris", 2026, 12, 1, hh, mm);
        assert!(!h.is_open(at(8, 59)));
        assert!(h.is_open(at(9, 0)));
        assert!(h.is_open(at(17, 59)));
        assert!(!h.is_open(at(18, 0)));
        // 09:30 in Paris is 08:30 UTC: the zone counts, not UTC.
        assert!(h.is_open(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_113_800)));
        assert!(!h.is_open(instant("UTC", 2026, 12, 1, 17, 30)));
        // Saturday 5 December: no shift.
        assert!(!h.is_open(instant("Europe/Paris", 2026, 12, 5, 12, 0)));
        assert_eq!(h.zone(), "Europe/Paris");
        assert_eq!(h.shifts().len(), 5);
    }

    #[test]
    fn a_night_shift_runs_past_midnight() {
        let h = nights();
        let at = |d, hh, mm| instant("America/New_York", 2026, 12, d, hh, mm);
        // Tuesday 1 December 22:00 to Wednesday 02:00.
        assert!(!h.is_open(at(1, 21, 59)));
        assert!(h.is_open(at(1, 22, 0)));
        assert!(h.is_open(at(1, 23, 59)));
        assert!(h.is_open(at(2, 0, 0)));
        assert!(h.is_open(at(2, 1, 59)));
        assert!(!h.is_open(at(2, 2, 0)));
        // Monday night has no shift; Sunday's (none) does not run into Monday.
        assert!(!h.is_open(at(7, 23, 0)));
        assert!(!h.is_open(at(7, 1, 0)));
        // Saturday 5 December's shift runs into Sunday 6.
        assert!(h.is_open(at(6, 1, 0)));
        assert!(!h.is_open(at(6, 22, 0)));
    }

    #[test]
    fn a_holiday_closes_its_date_and_its_own_shift() {
        let h = nights();
        let at = |d, hh, mm| instant("America/New_York", 2026, 12, d, hh, mm);
        // Thursday 24 December's shift runs until midnight, then Christmas is closed.
        assert!(h.is_open(at(24, 23, 30)));
        assert!(!h.is_open(at(25, 0, 30)));
        // Christmas night's own shift is closed, also past midnight.
        assert!(!h.is_open(at(25, 22, 30)));
        assert!(!h.is_open(at(26, 1, 0)));
        // Saturday 26's shift opens again.
        assert!(h.is_open(at(26, 22, 30)));
        assert_eq!(h.holidays().count(), 1);
    }

    #[test]
    fn daylight_saving_changes_count_wall_clock_time() {
        // New York springs forward on Sunday 8 March 2026 (02:00 -> 03:00) and falls back
        // on Sunday 1 November (02:00 -> 01:00).
        let h = OperatingHours::new("America/New_York").unwrap().shift(
            Weekday::Sunday,
            t(1, 0),
            t(4, 0),
        );
        let spring_open = instant("America/New_York", 2026, 3, 8, 1, 0);
        // 01:59 local, then 03:00 local one minute later: both open; 04:00 closes, two
        // hours after it opened.
        assert!(h.is_open(spring_open + Duration::from_secs(59 * 60)));
        assert!(h.is_open(spring_open + Duration::from_secs(60 * 60)));
        assert!(h.is_open(spring_open + Duration::from_secs(119 * 60)));
        assert!(!h.is_open(spring_open + Duration::from_secs(120 * 60)));
        // In the autumn the same shift lasts four hours.
        let fall_open = instant("America/New_York", 2026, 11, 1, 1, 0);
        assert!(h.is_open(fall_open + Duration::from_secs(239 * 60)));
        assert!(!h.is_open(fall_open + Duration::from_secs(240 * 60)));
        assert!(!h.is_open(spring_open - Duration::from_secs(60)));
    }

    #[test]
    fn a_shift_ending_where_it_starts_lasts_a_day() {
        let h =
            OperatingHours::new("Asia/Kolkata")
                .unwrap()
                .shift(Weekday::Monday, t(0, 0), t(0, 0));
        // Monday 7 December 2026, all day; Tuesday not.
        assert!(h.is_open(instant("Asia/Kolkata", 2026, 12, 7, 0, 0)));
        assert!(h.is_open(instant("Asia/Kolkata", 2026, 12, 7, 23, 59)));
        assert!(!h.is_open(instant("Asia/Kolkata", 2026, 12, 8, 0, 0)));
    }

    #[test]
    fn a_time_out_of_the_calendar_is_closed() {
        let h = OperatingHours::new("UTC")
            .unwrap()
            .shift(Weekday::Monday, t(0, 0), t(0, 0));
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(!h.is_open(far));
        // Never open with no shift.
        assert!(
            !OperatingHours::new("UTC")
                .unwrap()
                .is_open(SystemTime::UNIX_EPOCH)
        );
    }

    #[test]
    fn hours_round_trip_through_serde() {
        let h = nights();
        let json = serde_json::to_string(&h).unwrap();
        let back: OperatingHours = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert!(back.is_open(instant("America/New_York", 2026, 12, 1, 23, 0)));
        assert_ne!(back, OperatingHours::new("America/New_York").unwrap());
        let bad = json.replace("America/New_York", "Nowhere/Never");
        assert!(serde_json::from_str::<OperatingHours>(&bad).is_err());
        let bad_day = serde_json::json!({"zone": "UTC", "shifts": [{"day": 9, "start": "09:00", "end": "10:00"}]});
        assert!(serde_json::from_value::<OperatingHours>(bad_day).is_err());
    }
}
