//! When reports are due: every N seconds, or at each time of a cron expression in a time zone,
//! and the grace period after it.

use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::model::Every;

/// Seconds in `text`: a whole number followed by `s`, `m`, `h` or `d` (`90s`, `15m`, `24h`,
/// `7d`), positive and at most 366 days.
pub fn parse_duration(text: &str) -> Result<i32, String> {
    let bad = || format!("{text:?} is not a duration such as 90s, 15m, 24h or 7d");
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = n.checked_mul(unit).ok_or_else(bad)?;
    if !(0..=366 * 86_400).contains(&seconds) {
        return Err(format!("{text:?} is longer than 366 days"));
    }
    Ok(seconds as i32)
}

/// `seconds` as [`parse_duration`] reads it, in the largest unit that divides it.
pub fn format_duration(seconds: i32) -> String {
    match seconds {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Whether `every` can be scheduled: a positive interval, or a valid cron expression in a
/// known time zone; the error says what is wrong.
pub fn check(every: &Every) -> Result<(), String> {
    Schedule::new(every).map(|_| ())
}

/// When reports are due.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so long.
    Every(SignedDuration),
    /// At each time of a cron expression.
    Cron(Cron),
}

impl Schedule {
    /// Parses `every` (what [`check`] validates).
    pub fn new(every: &Every) -> Result<Schedule, String> {
        match every {
            Every::Seconds(s) if *s > 0 => {
                Ok(Schedule::Every(SignedDuration::from_secs(i64::from(*s))))
            }
            Every::Seconds(_) => Err("must be at least 1s".to_owned()),
            Every::Cron { expr, timezone } => Cron::new(expr, timezone).map(Schedule::Cron),
        }
    }

    /// The first deadline of a policy seen for the first time at `now`: every N, `now` + N +
    /// grace; cron, the next fire time strictly after `now`, plus grace.
    pub fn first_due(&self, now: Timestamp, grace_s: i32) -> Timestamp {
        self.due_after_report(now, grace_s)
    }

    /// The deadline after a report at `at`: every N, `at` + N + grace; cron, the next fire
    /// time strictly after `at`, plus grace.
    pub fn due_after_report(&self, at: Timestamp, grace_s: i32) -> Timestamp {
        let next = match self {
            Schedule::Every(period) => plus(at, *period),
            Schedule::Cron(cron) => cron.next_after(at),
        };
        plus(next, grace(grace_s))
    }

    /// The deadline after the one at `due` passed without a report: every N, `due` + N;
    /// cron, the next fire time strictly after `due` - grace, plus grace.
    pub fn due_after_miss(&self, due: Timestamp, grace_s: i32) -> Timestamp {
        match self {
            Schedule::Every(period) => plus(due, *period),
            Schedule::Cron(cron) => {
                let fired = plus(due, -grace(grace_s));
                plus(cron.next_after(fired), grace(grace_s))
            }
        }
    }
}

fn grace(seconds: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(seconds))
}

/// `t` + `d`, held at the ends of the time line rather than overflowing.
fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.saturating_add(d)
        .expect("a SignedDuration has no calendar units")
}

/// How far ahead a fire time is looked for: the longest wait of an expression that `new`
/// accepts is under 400 years (a weekday of 29 February recurs within the Gregorian cycle).
const SEARCH_DAYS: u32 = 400 * 366;

/// A cron expression (minute hour day-of-month month day-of-week) in a time zone, as Vixie
/// cron reads it.
#[derive(Debug, Clone)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Day-of-month and day-of-week both restricted: a day matches if either does.
    either_day: bool,
    tz: TimeZone,
}

/// A cron field: its name, range and the names its values may go by.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// The most days each month has (29 February in leap years).
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl Cron {
    /// Parses `expr` in the IANA time zone `timezone`; the error names the field and what is
    /// wrong with it, and an expression that can never fire (`0 0 31 2 *`) is one.
    pub fn new(expr: &str, timezone: &str) -> Result<Cron, String> {
        if expr.trim_start().starts_with('@') {
            return Err(format!(
                "{expr:?}: nicknames such as @daily are not supported; write the 5 fields \
                 (minute hour day-of-month month day-of-week), as in 0 0 * * *"
            ));
        }
        let fields: Vec<&str> = expr.split_ascii_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            let n = fields.len();
            let s = if n == 1 { "" } else { "s" };
            return Err(format!(
                "the expression has {n} field{s}, a cron expression has 5 \
                 (minute hour day-of-month month day-of-week)"
            ));
        };
        let minutes = parse_field(&MINUTE, minute)?;
        let hours = parse_field(&HOUR, hour)? as u32;
        let days = parse_field(&DAY, day)? as u32;
        let months = parse_field(&MONTH, month)? as u16;
        let mut weekdays = parse_field(&WEEKDAY, weekday)?;
        // 7 is Sunday too.
        if weekdays & 1 << 7 != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        // Vixie cron: a field that starts with `*` (`*`, `*/2`) does not restrict the day;
        // when neither does, a day matching either field matches (crontab(5)).
        let day_star = day.starts_with('*');
        let weekday_star = weekday.starts_with('*');
        // Every month has every weekday and a 1st (which `*/n` includes), so only a day of
        // month restricted under a day of week of `*` can miss every month.
        if !day_star && weekday_star {
            let occurs = (1..=12).any(|m| {
                months & 1 << m != 0 && days & (u32::MAX >> (31 - MONTH_DAYS[m - 1])) != 0
            });
            if !occurs {
                return Err(format!(
                    "the expression never fires: day-of-month {day} does not occur in month \
                     {month}"
                ));
            }
        }
        let tz = TimeZone::get(timezone).map_err(|_| {
            if jiff::tz::db().is_definitively_empty() {
                format!("unknown time zone {timezone:?} (no time zone database was found)")
            } else {
                format!("unknown time zone {timezone:?}")
            }
        })?;
        Ok(Cron {
            minutes,
            hours,
            days,
            months,
            weekdays: weekdays as u8,
            either_day: !day_star && !weekday_star,
            tz,
        })
    }

    /// The next fire time strictly after `t`. Fire times are civil times in the zone: one
    /// skipped by a change of offset (spring forward) fires at the end of the gap, one that
    /// happens twice (fall back) fires at its first occurrence only.
    pub fn next_after(&self, t: Timestamp) -> Timestamp {
        let local = self.tz.to_datetime(t);
        let mut date = local.date();
        // Every civil time up to `local`'s minute fires at or before `t` (see `instant`).
        let mut minute = minute_of_day(local.hour(), local.minute()) + 1;
        loop {
            let Some((day, at)) = self.next_civil(date, minute) else {
                return Timestamp::MAX;
            };
            match self.instant(day, at) {
                Some(fire) if fire > t => return fire,
                Some(_) => (date, minute) = (day, at + 1),
                None => return Timestamp::MAX,
            }
        }
    }

    /// The first civil time matching the expression at or after minute `minute` (0-1440)
    /// of `date`, as a date and a minute of its day.
    fn next_civil(&self, mut date: Date, mut minute: u32) -> Option<(Date, u32)> {
        for _ in 0..SEARCH_DAYS {
            if self.months & 1 << date.month() == 0 {
                date = date.last_of_month().tomorrow().ok()?;
                minute = 0;
                continue;
            }
            if self.day_matches(date) {
                if let Some(at) = self.time_at_or_after(minute) {
                    return Some((date, at));
                }
            }
            date = date.tomorrow().ok()?;
            minute = 0;
        }
        None
    }

    /// Whether `date`'s day matches (its month already does).
    fn day_matches(&self, date: Date) -> bool {
        let day = self.days & 1 << date.day() != 0;
        let weekday = self.weekdays & 1 << date.weekday().to_sunday_zero_offset() != 0;
        if self.either_day {
            day || weekday
        } else {
            day && weekday
        }
    }

    /// The first minute of a day at or after `from` (0-1440) that the hour and minute
    /// fields match.
    fn time_at_or_after(&self, from: u32) -> Option<u32> {
        (from / 60..24)
            .filter(|h| self.hours & 1 << h != 0)
            .find_map(|h| {
                let first = if h == from / 60 { from % 60 } else { 0 };
                let left = self.minutes & u64::MAX << first;
                (left != 0).then(|| h * 60 + left.trailing_zeros())
            })
    }

    /// When the civil time `minute` of `date` happens in the zone: a time in a gap at the
    /// gap's end ("jobs in the gap run once at the end of the gap", as in Vixie cron), a
    /// time that happens twice at its first occurrence. Later civil times never happen
    /// earlier. `None` past the end of the time line.
    fn instant(&self, date: Date, minute: u32) -> Option<Timestamp> {
        // Both below 60 and 24, so they fit.
        let civil = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let ambiguous = self.tz.to_ambiguous_timestamp(civil);
        match ambiguous.offset() {
            AmbiguousOffset::Gap { after, .. } => {
                // Read with the offset after the gap it is before the change: the change
                // is the next transition.
                let before_change = after.to_timestamp(civil).ok()?;
                let change = self.tz.following(before_change).next();
                change
                    .map(|c| c.timestamp())
                    .or_else(|| ambiguous.compatible().ok())
            }
            _ => ambiguous.earlier().ok(),
        }
    }
}

fn minute_of_day(hour: i8, minute: i8) -> u32 {
    // A civil time's hour and minute are never negative.
    (hour as u32) * 60 + minute as u32
}

/// The values `text` lists for `field`, as bits: `*`, numbers (or names), ranges `a-b`,
/// steps `*/n` and `a-b/n`, and lists of these separated by commas.
fn parse_field(field: &Field, text: &str) -> Result<u64, String> {
    let name = field.name;
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name}: {text:?} has an empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            if a.is_empty() || b.is_empty() {
                return Err(format!("{name}: {range} is not a range such as 1-5"));
            }
            let (a, b) = (value(field, a)?, value(field, b)?);
            if a > b {
                return Err(format!("{name}: the range {range} goes backwards"));
            }
            (a, b)
        } else {
            let a = value(field, range)?;
            if let Some(step) = step {
                let max = field.max;
                return Err(format!(
                    "{name}: {item} has a step but no range; write {range}-{max}/{step}"
                ));
            }
            (a, a)
        };
        let step = match step {
            None => 1,
            Some(step) => match step.parse::<u32>() {
                Ok(0) => return Err(format!("{name}: the step in {item} must be at least 1")),
                Ok(n) => n,
                Err(_) => return Err(format!("{name}: the step in {item} is not a number")),
            },
        };
        for v in (first..=last).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

/// One value of `field`: a number in its range or one of its names.
fn value(field: &Field, text: &str) -> Result<u32, String> {
    let name = field.name;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n = text.parse::<u32>().unwrap_or(u32::MAX);
        if !(field.min..=field.max).contains(&n) {
            let shown = if n == u32::MAX {
                text.to_owned()
            } else {
                n.to_string()
            };
            return Err(format!(
                "{name}: {shown} is out of range {}-{}",
                field.min, field.max
            ));
        }
        return Ok(n);
    }
    if let Some(i) = field
        .names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
    {
        return Ok(field.min + i as u32);
    }
    Err(match field.names {
        [] => format!("{name}: {text:?} is not a number"),
        names => format!(
            "{name}: {text:?} is not a number or a name ({}-{})",
            names[0],
            names[names.len() - 1]
        ),
    })
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
