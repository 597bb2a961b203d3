use super::*;

/// A UTC time such as `2026-03-10T23:45Z`.
fn ts(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

fn every(expr: &str, timezone: &str) -> Every {
    Every::Cron {
        expr: expr.to_owned(),
        timezone: timezone.to_owned(),
    }
}

/// Each row in `timezone`: expression, after, the next fire time (both UTC).
fn assert_next(timezone: &str, rows: &[(&str, &str, &str)]) {
    for (expr, after, want) in rows {
        let cron = Cron::new(expr, timezone).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        let fire = cron.next_after(ts(after));
        assert_eq!(fire, ts(want), "{expr:?} in {timezone} after {after}");
    }
}

/// Why `expr` (in UTC) is rejected.
fn error(expr: &str) -> String {
    check(&every(expr, "UTC")).expect_err(expr)
}

#[test]
fn durations_parse_and_format() {
    assert_eq!(parse_duration("90s"), Ok(90));
    assert_eq!(parse_duration("15m"), Ok(900));
    assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
    assert!(parse_duration("7").is_err());
    assert!(parse_duration("367d").is_err());
    assert_eq!(format_duration(7200), "2h");
    assert_eq!(format_duration(90), "90s");
}

#[test]
fn bad_expressions_say_which_field_and_what() {
    let rows = [
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("* * * 13 *", "month: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
        (
            "99999999999 * * * *",
            "minute: 99999999999 is out of range 0-59",
        ),
        ("x * * * *", r#"minute: "x" is not a number"#),
        (
            "* * * FOO *",
            r#"month: "FOO" is not a number or a name (JAN-DEC)"#,
        ),
        (
            "* * * * MON-FUN",
            r#"day-of-week: "FUN" is not a number or a name (SUN-SAT)"#,
        ),
        ("5-2 * * * *", "minute: the range 5-2 goes backwards"),
        ("-1 * * * *", "minute: -1 is not a range such as 1-5"),
        ("*/0 * * * *", "minute: the step in */0 must be at least 1"),
        ("*/x * * * *", "minute: the step in */x is not a number"),
        (
            "5/15 * * * *",
            "minute: 5/15 has a step but no range; write 5-59/15",
        ),
        ("1,,2 * * * *", r#"minute: "1,,2" has an empty list item"#),
    ];
    for (expr, want) in rows {
        assert_eq!(error(expr), want, "{expr:?}");
    }
    let five = "a cron expression has 5 (minute hour day-of-month month day-of-week)";
    for (expr, n) in [("* * * *", 4), ("* * * * * *", 6), ("", 0)] {
        assert_eq!(
            error(expr),
            format!("the expression has {n} fields, {five}")
        );
    }
    assert!(error("@daily").contains("0 0 * * *"), "{}", error("@daily"));
}

#[test]
fn expressions_that_never_fire_are_rejected() {
    assert_eq!(
        error("0 0 31 2 *"),
        "the expression never fires: day-of-month 31 does not occur in month 2"
    );
    assert_eq!(
        error("0 0 30,31 FEB *"),
        "the expression never fires: day-of-month 30,31 does not occur in month FEB"
    );
    assert_eq!(
        error("0 0 31 4,6,9,11 *"),
        "the expression never fires: day-of-month 31 does not occur in month 4,6,9,11"
    );
    // With a day of week as well, 31 February is no longer the only day: Mondays in February.
    assert_eq!(check(&every("0 0 31 2 MON", "UTC")), Ok(()));
    assert_eq!(check(&every("0 0 29 2 *", "UTC")), Ok(()));
}

#[test]
fn bad_time_zones_and_intervals_are_rejected() {
    assert_eq!(
        check(&every("0 2 * * *", "Mars/Base")),
        Err(r#"unknown time zone "Mars/Base""#.to_owned())
    );
    assert_eq!(
        check(&Every::Seconds(0)),
        Err("must be at least 1s".to_owned())
    );
    assert_eq!(
        check(&Every::Seconds(-5)),
        Err("must be at least 1s".to_owned())
    );
    assert_eq!(check(&Every::Seconds(60)), Ok(()));
    assert_eq!(check(&every("0 2 * * *", "Europe/Berlin")), Ok(()));
    assert_eq!(
        check(&every("*/15 9-17 * JAN-mar,Dec mon-FRI", "UTC")),
        Ok(())
    );
}

#[test]
fn every_n_deadlines() {
    let schedule = Schedule::new(&Every::Seconds(3600)).expect("valid");
    let now = ts("2026-03-10T10:07:30Z");
    assert_eq!(schedule.first_due(now, 600), ts("2026-03-10T11:17:30Z"));
    assert_eq!(
        schedule.due_after_report(now, 600),
        ts("2026-03-10T11:17:30Z")
    );
    let due = ts("2026-03-10T11:17:30Z");
    assert_eq!(
        schedule.due_after_miss(due, 600),
        ts("2026-03-10T12:17:30Z")
    );
}

#[test]
fn next_fire_times_in_utc() {
    assert_next(
        "UTC",
        &[
            // Across a day boundary, and strictly after.
            ("30 23 * * *", "2026-03-10T23:45Z", "2026-03-11T23:30Z"),
            ("30 23 * * *", "2026-03-10T23:29:59Z", "2026-03-10T23:30Z"),
            ("30 23 * * *", "2026-03-10T23:30Z", "2026-03-11T23:30Z"),
            // Month and year ends.
            ("0 0 1 * *", "2026-01-31T12:00Z", "2026-02-01T00:00Z"),
            ("0 0 31 * *", "2026-04-01T00:00Z", "2026-05-31T00:00Z"),
            ("0 0 1 1 *", "2026-06-01T00:00Z", "2027-01-01T00:00Z"),
            ("59 23 31 12 *", "2026-12-31T23:59Z", "2027-12-31T23:59Z"),
            // Steps, lists and ranges.
            ("*/15 * * * *", "2026-03-10T10:07Z", "2026-03-10T10:15Z"),
            ("*/15 * * * *", "2026-03-10T10:45Z", "2026-03-10T11:00Z"),
            ("*/15 * * * *", "2026-03-10T23:50Z", "2026-03-11T00:00Z"),
            ("0 9-17/4 * * *", "2026-03-10T13:00Z", "2026-03-10T17:00Z"),
            ("0 9-17/4 * * *", "2026-03-10T17:00Z", "2026-03-11T09:00Z"),
            ("5,35 8,20 * * *", "2026-03-10T08:05Z", "2026-03-10T08:35Z"),
            ("5,35 8,20 * * *", "2026-03-10T08:35Z", "2026-03-10T20:05Z"),
            ("10-12 0 * * *", "2026-03-10T00:10Z", "2026-03-10T00:11Z"),
            // Names, in any case; 7 is Sunday as 0 is.
            (
                "0 12 * jan-MAR,Dec sun",
                "2026-04-01T00:00Z",
                "2026-12-06T12:00Z",
            ),
            ("0 12 * * 7", "2026-03-10T00:00Z", "2026-03-15T12:00Z"),
            ("0 12 * * 0", "2026-03-10T00:00Z", "2026-03-15T12:00Z"),
        ],
    );
}

#[test]
fn day_of_month_or_day_of_week() {
    // 2026-03-10 is a Tuesday, the 13th a Friday, the 16th and 23rd Mondays.
    assert_next(
        "UTC",
        &[
            // One of them `*`: both must match.
            ("0 0 * * MON", "2026-03-10T00:00Z", "2026-03-16T00:00Z"),
            ("0 0 13 * *", "2026-03-10T00:00Z", "2026-03-13T00:00Z"),
            // Both restricted: either.
            ("0 0 13 * MON", "2026-03-10T00:00Z", "2026-03-13T00:00Z"),
            ("0 0 13 * MON", "2026-03-13T00:00Z", "2026-03-16T00:00Z"),
            ("0 0 13 * MON", "2026-03-16T00:00Z", "2026-03-23T00:00Z"),
            ("0 0 31 2 MON", "2026-03-10T00:00Z", "2027-02-01T00:00Z"),
            // Vixie cron: a field starting with `*` does not restrict the day, so this is
            // both: Mondays on odd days.
            ("0 0 */2 * MON", "2026-03-10T00:00Z", "2026-03-23T00:00Z"),
        ],
    );
}

#[test]
fn rare_days_are_found() {
    assert_next(
        "UTC",
        &[
            ("0 0 29 2 *", "2026-03-01T00:00Z", "2028-02-29T00:00Z"),
            // 2100 is no leap year: eight years to the next 29 February.
            ("0 0 29 2 *", "2096-03-01T00:00Z", "2104-02-29T00:00Z"),
            // A Sunday 29 February: 2088, then 2128.
            ("0 0 29 2 */7", "2089-01-01T00:00Z", "2128-02-29T00:00Z"),
        ],
    );
}

#[test]
fn berlin_around_spring_forward() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00Z); no 02:xx that day.
    assert_next(
        "Europe/Berlin",
        &[
            ("0 2 * * *", "2026-03-27T12:00Z", "2026-03-28T01:00Z"),
            // Skipped: fires at the end of the gap, 03:00 CEST.
            ("0 2 * * *", "2026-03-28T23:00Z", "2026-03-29T01:00Z"),
            ("0 2 * * *", "2026-03-29T01:00Z", "2026-03-30T00:00Z"),
            ("30 2 * * *", "2026-03-28T23:00Z", "2026-03-29T01:00Z"),
            // Several times in the gap fire once.
            ("*/30 2 * * *", "2026-03-29T01:00Z", "2026-03-30T00:00Z"),
            // 03:00 is the end of the gap: 02:00, 02:30 and 03:00 fire once, then 03:30.
            ("0,30 2,3 * * *", "2026-03-28T23:00Z", "2026-03-29T01:00Z"),
            ("0,30 2,3 * * *", "2026-03-29T01:00Z", "2026-03-29T01:30Z"),
        ],
    );
}

#[test]
fn berlin_around_fall_back() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00Z); 02:xx happens twice.
    assert_next(
        "Europe/Berlin",
        &[
            ("0 2 * * *", "2026-10-24T12:00Z", "2026-10-25T00:00Z"),
            // Not again at the second 02:00 (01:00Z).
            ("0 2 * * *", "2026-10-25T00:00Z", "2026-10-26T01:00Z"),
            ("30 2 * * *", "2026-10-25T00:45Z", "2026-10-26T01:30Z"),
            // In the second 02:xx, the quarters already fired the first time.
            ("*/15 * * * *", "2026-10-25T00:45Z", "2026-10-25T02:00Z"),
            ("*/15 * * * *", "2026-10-25T01:10Z", "2026-10-25T02:00Z"),
        ],
    );
}

#[test]
fn the_zone_decides_the_instant() {
    assert_next(
        "UTC",
        &[("0 9 * * *", "2026-03-10T00:00Z", "2026-03-10T09:00Z")],
    );
    assert_next(
        "America/New_York",
        &[
            // EDT (-04) since 8 March, EST (-05) in January.
            ("0 9 * * *", "2026-03-10T00:00Z", "2026-03-10T13:00Z"),
            ("0 9 * * *", "2026-01-10T00:00Z", "2026-01-10T14:00Z"),
            // 23:30 in New York is the next day in UTC.
            ("30 23 * * *", "2026-01-10T12:00Z", "2026-01-11T04:30Z"),
        ],
    );
}

#[test]
fn cron_deadlines_add_grace() {
    let schedule = Schedule::new(&every("30 23 * * *", "Europe/Berlin")).expect("valid");
    let report = ts("2026-10-24T20:00Z");
    // 23:30 CEST is 21:30Z; ten minutes of grace.
    assert_eq!(schedule.first_due(report, 600), ts("2026-10-24T21:40Z"));
    assert_eq!(
        schedule.due_after_report(report, 600),
        ts("2026-10-24T21:40Z")
    );
    // A report after the fire time, within the grace, counts for it: next is the next night
    // (23:30 CET, 22:30Z).
    let late = ts("2026-10-24T21:35Z");
    assert_eq!(
        schedule.due_after_report(late, 600),
        ts("2026-10-25T22:40Z")
    );
}

#[test]
fn misses_step_period_by_period() {
    let schedule = Schedule::new(&every("30 23 * * *", "Europe/Berlin")).expect("valid");
    // From CEST into CET: 23:30 is 21:30Z, then 22:30Z.
    let mut due = ts("2026-10-23T21:40Z");
    let mut dues = Vec::new();
    for _ in 0..3 {
        due = schedule.due_after_miss(due, 600);
        dues.push(due);
    }
    let want = [
        "2026-10-24T21:40Z",
        "2026-10-25T22:40Z",
        "2026-10-26T22:40Z",
    ];
    assert_eq!(dues, want.map(ts));

    // A grace longer than the period still steps one period at a time.
    let hourly = Schedule::new(&every("0 * * * *", "UTC")).expect("valid");
    let due = hourly.due_after_report(ts("2026-03-10T10:05Z"), 7200);
    assert_eq!(due, ts("2026-03-10T13:00Z"));
    assert_eq!(hourly.due_after_miss(due, 7200), ts("2026-03-10T14:00Z"));
}
