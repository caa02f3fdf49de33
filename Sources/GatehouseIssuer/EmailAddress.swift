// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import GatehouseHTTP

/// A configuration or start-up problem of the issuer, in one sentence.
public struct IssuerSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Emails are trimmed and compared case-insensitively (stored lower-case).
public enum EmailAddress {
    /// The normalised address, or nil when it is not a plausible address: one `@`, a local part of
    /// 1–64 printable characters, a dotted domain of letters, digits and hyphens, 254 bytes at most.
    public static func normalize(_ raw: String) -> String? {
        let email = Substring(raw).trimmingSpaces.lowercased()
        guard email.utf8.count <= 254 else { return nil }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...64).contains(parts[0].utf8.count),
            parts[0].unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && $0 != "," && $0 != "<" && $0 != ">" })
        else { return nil }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0.value > 0x7F }
        }) else { return nil }
        return email
    }
}
