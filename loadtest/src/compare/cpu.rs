//! A server's CPU time from `/proc`: user plus system time of the server's process and of
//! every descendant alive (PostgreSQL serves each connection from its own process), plus
//! what their children that already exited left in their `cutime`/`cstime` once reaped, so
//! a backend that ends between two readings is not lost.

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat`'s times. `getconf CLK_TCK` is 100 on every
/// Linux platform this runs on; libc's `sysconf` is not a dependency, so it is assumed.
const TICKS_PER_SECOND: u64 = 100;

/// One process's line of `/proc/PID/stat`: its parent and its CPU ticks (utime, stime,
/// cutime, cstime: fields 14 to 17).
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a stat line. The command name (field 2) is in parentheses and may hold spaces,
/// so the fields are counted from the last `)`: field 3 (state) is the first after it.
fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ppid = u32::try_from(field(4)?).ok()?;
    let ticks = field(14)? + field(15)? + field(16)? + field(17)?;
    Some((ppid, ticks))
}

/// CPU time used so far by `pid` and its descendants; none if `pid` is gone.
pub fn tree_cpu(pid: u32) -> Option<Duration> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    for (p, _) in super::numbered_entries("/proc") {
        if let Some((ppid, t)) = stat(p) {
            children.entry(ppid).or_default().push(p);
            ticks.insert(p, t);
        }
    }
    let mut total = *ticks.get(&pid)?;
    let mut todo = children.remove(&pid).unwrap_or_default();
    while let Some(p) = todo.pop() {
        total += ticks.get(&p).copied().unwrap_or(0);
        todo.extend(children.remove(&p).unwrap_or_default());
    }
    Some(Duration::from_micros(total * 1_000_000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_command_name() {
        let line = "4242 (a (b) c) S 17 4242 11 0 -1 4194304 101 0 1 0 30 12 5 3 20 0 1 0";
        assert_eq!(parse_stat(line), Some((17, 50)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let mine = tree_cpu(std::process::id());
        assert!(mine.is_some());
        assert_eq!(tree_cpu(u32::MAX), None);
    }
}
