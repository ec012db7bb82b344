//! `aerolith-storagenode healthcheck`: the probe images without a shell use, answered by this binary.

#[test]
fn healthcheck_exits_0_on_a_healthy_endpoint_and_1_with_one_line_otherwise() {
    aerolith_testkit::assert_healthcheck_answers(
        env!("CARGO_BIN_EXE_aerolith-storagenode"),
        "aerolith-storagenode",
    );
}
