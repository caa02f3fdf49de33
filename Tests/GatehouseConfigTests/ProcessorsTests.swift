// SPDX-License-Identifier: Apache-2.0
@testable import GatehouseConfig
import Testing

@Suite("CPUs this process may use")
struct ProcessorsTests {
    @Test("cgroup quotas: whole CPUs rounded up; no limit, garbage and overflow-sized numbers are no quota, never a trap")
    func quotas() {
        #expect(Processors.quotaV2("200000 100000\n") == 2)
        #expect(Processors.quotaV2("150000 100000") == 2)
        #expect(Processors.quotaV2("50000 100000") == 1)
        #expect(Processors.quotaV2("max 100000") == nil)
        #expect(Processors.quotaV2("9223372036854775807 1") == Int.max)
        for bad in ["", "100000", "0 100000", "-1 100000", "1e9 100000", "100000 0", "a b c"] {
            #expect(Processors.quotaV2(bad) == nil, "\(bad)")
        }
        #expect(Processors.quota("-1\n", period: "100000\n") == nil)
        #expect(Processors.quota("300000\n", period: "100000\n") == 3)
    }

    @Test("the figure is at least one and at most the affinity mask")
    func available() {
        #expect(Processors.available >= 1)
        if let affinity = Processors.affinityCount() { #expect(Processors.available <= affinity) }
    }
}
