// SPDX-License-Identifier: Apache-2.0

extension Duration {
    /// Parses `250ms`, `30s`, `15m`, `2h`, `7d` and sums like `1h30m`, up to 100 years. Nil for
    /// anything else.
    public init?(configText text: String) {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        var rest = Substring(text)
        var total: Int64 = 0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix(while: \.isASCII).prefix(while: \.isNumber)
            guard !digits.isEmpty, digits.count <= 12, let value = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let (unit, milliseconds) = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) })
            else { return nil }
            rest = rest.dropFirst(unit.count)
            let (part, overflow) = value.multipliedReportingOverflow(by: milliseconds)
            guard !overflow, part <= Self.longestMilliseconds - total else { return nil }
            total += part
        }
        self = .milliseconds(total)
    }

    /// 100 years: every duration becomes nanoseconds in an `Int64` somewhere (timers, deadlines),
    /// which hold about 292 years, so a longer one must be refused here, not trap there.
    private static let longestMilliseconds: Int64 = 36_500 * 86_400_000

    /// Whole and fractional seconds.
    public var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
