//! AerolithDB's test harnesses that drive real clusters over the wire. `faults` runs a
//! workload under injected faults (process kills, a partitioned replicator link, a skewed
//! clock) and checks what was acknowledged against what every DC holds afterwards.

pub mod faults;
