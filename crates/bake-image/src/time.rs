//! Seconds since 1970 to RFC 3339, without a clock or a date library.

/// The last second RFC 3339 can write: 9999-12-31T23:59:59Z.
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// `epoch` (seconds since 1970-01-01T00:00:00Z) as an RFC 3339 UTC
/// timestamp with second precision, e.g. `1970-01-01T00:00:00Z` for 0.
///
/// Epochs after [`MAX_EPOCH`] give a year with more than four digits, which
/// is not valid RFC 3339; [`crate::build_config`] rejects them.
///
/// ```
/// assert_eq!(bake_image::created_rfc3339(0), "1970-01-01T00:00:00Z");
/// assert_eq!(bake_image::created_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
/// ```
pub fn created_rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian (year, month, day) of `days` after 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`, restricted to non-negative day
/// counts so everything stays unsigned: shift the epoch to 0000-03-01 so the
/// leap day is the last day of the (March-based) year, split into 400-year
/// eras of 146 097 days, then into years of the era and days of the year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Whether `s` is an RFC 3339 date-time as both the OCI config schema
/// (`"format": "date-time"`) and Go's `time.Time` decoder (what skopeo,
/// podman and docker read configs with) accept it:
/// `YYYY-MM-DDTHH:MM:SS[.FRACTION](Z|+HH:MM|-HH:MM)`, upper-case `T` and
/// `Z`, a real day of the month, seconds 00–59 (Go refuses a leap second).
pub(crate) fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |at: usize, n: usize| -> Option<u32> {
        let digits = b.get(at..at + n)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return false;
    };
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    let mut at = 19;
    if sep(at, b'.') {
        let digits = b[at + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        at += 1 + digits;
    }
    match b.get(at..) {
        Some(b"Z") => true,
        Some([b'+' | b'-', ..]) if b.len() == at + 6 => {
            matches!((num(at + 1, 2), sep(at + 3, b':'), num(at + 4, 2)),
                (Some(h), true, Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        for (epoch, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (59, "1970-01-01T00:00:59Z"),
            (86_399, "1970-01-01T23:59:59Z"),
            (86_400, "1970-01-02T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (MAX_EPOCH, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(created_rfc3339(epoch), want, "epoch {epoch}");
        }
    }

    #[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; MSRV is 1.85
    fn is_leap(y: u64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    fn month_len(y: u64, m: u64) -> u64 {
        match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// An independent calendar: start at 1970-01-01 and add one day at a time
    /// for four centuries (which crosses 2000, a leap century year, and 2100,
    /// 2200 and 2300, which are not).
    #[test]
    fn agrees_with_a_day_by_day_walk() {
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!((y, m, d), (2370, 1, 1));
    }

    #[test]
    fn rfc3339_is_checked_like_go_reads_it() {
        for good in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2023-11-14T22:13:20.123456789Z",
            "2023-11-14T22:13:20.1+05:30",
            "0001-01-01T00:00:00-23:59",
            "9999-12-31T23:59:59Z",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "",
            "yesterday",
            "2023-11-14",
            "2023-11-14 22:13:20Z",
            "2023-11-14t22:13:20Z",
            "2023-11-14T22:13:20z",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-00-01T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:60:00Z",
            "2023-01-01T00:00:60Z",
            "2023-01-01T00:00:00.Z",
            "2023-01-01T00:00:00+0100",
            "2023-01-01T00:00:00+24:00",
            "2023-01-01T00:00:00+01:60",
            "2023-01-01T00:00:00Z ",
            "+2023-01-01T00:00:00Z",
            "２０２３-01-01T00:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
        for epoch in [0, 59, 951_782_400, 1_700_000_000, MAX_EPOCH] {
            assert!(is_rfc3339(&created_rfc3339(epoch)), "{epoch}");
        }
    }
}
