// SPDX-License-Identifier: Apache-2.0
public import GatehouseJOSE

/// Who a verified token speaks for, in the form the identity headers carry.
///
/// Header values are injection-safe by construction: every value is printable ASCII without
/// commas (0x21–0x7E), so `auth0|abc` and URL-shaped scopes pass and CR, LF, NUL, spaces and list
/// separators never reach a header. A token that breaks this is refused with `bad_claim`.
public struct Identity: Sendable, Equatable {
    /// `X-User-Id`: `user_id` when present (an integer or a string), else `sub`.
    public let userID: String
    /// `X-User-Role`: `role`, else the first of `roles`.
    public let role: String?
    /// `X-User-Roles`: `roles`, comma-separated (`role` alone when the token has no `roles`).
    public let roles: [String]
    /// `X-User-Scopes`: the space-separated `scope`, comma-separated.
    public let scopes: [String]
    /// The token's `sid`, checked against the revoked sessions on every request (no header).
    public let sessionID: String?
    /// When the token stops being accepted (`exp` plus the provider's leeway, seconds since the
    /// epoch): a WebSocket tunnel opened with it ends then.
    public package(set) var validUntil: Double?
    /// `roles` and `scopes` as header values, joined once per verified token (nil when empty).
    package let rolesHeader: String?
    package let scopesHeader: String?

    public init(userID: String, role: String?, roles: [String], scopes: [String], sessionID: String? = nil) {
        self.userID = userID
        self.role = role
        self.roles = roles
        self.scopes = scopes
        self.sessionID = sessionID
        self.rolesHeader = Self.headerValue(roles)
        self.scopesHeader = Self.headerValue(scopes)
    }

    /// The identity in `claims`.
    public init(claims: ClaimSet) throws(JOSEError) {
        self.sessionID = claims.sessionID
        switch claims.value("user_id") ?? claims.value("sub") {
        case .string(let id):
            guard Self.isSafe(id) else { throw JOSEError(.badClaim, "user id holds characters outside 0x21-0x7E or a comma") }
            self.userID = id
        case .number(let id):
            guard id == id.rounded(), abs(id) < 1e15 else { throw JOSEError(.badClaim, "user_id is not an integer") }
            self.userID = String(Int64(id))
        case nil:
            throw JOSEError(.missingClaim, "neither user_id nor sub")
        default:
            throw JOSEError(.badClaim, "user_id is neither a string nor a number")
        }
        var roles: [String] = []
        switch claims.value("roles") {
        case nil: break
        case .array(let values):
            for value in values {
                guard let role = value.stringValue, Self.isSafe(role) else { throw JOSEError(.badClaim, "roles holds an unsafe value") }
                roles.append(role)
            }
        default: throw JOSEError(.badClaim, "roles is not an array of strings")
        }
        switch claims.value("role") {
        case nil: self.role = roles.first
        case .string(let role):
            guard Self.isSafe(role) else { throw JOSEError(.badClaim, "role holds an unsafe value") }
            self.role = role
        default: throw JOSEError(.badClaim, "role is not a string")
        }
        self.roles = roles.isEmpty ? self.role.map { [$0] } ?? [] : roles
        switch claims.value("scope") {
        case nil: self.scopes = []
        case .string(let scope):
            let scopes = scope.split(separator: " ").map(String.init)
            guard scopes.allSatisfy(Self.isSafe) else { throw JOSEError(.badClaim, "scope holds an unsafe value") }
            self.scopes = scopes
        default: throw JOSEError(.badClaim, "scope is not a string")
        }
        self.rolesHeader = Self.headerValue(self.roles)
        self.scopesHeader = Self.headerValue(self.scopes)
    }

    private static func headerValue(_ values: [String]) -> String? {
        values.isEmpty ? nil : values.joined(separator: ",")
    }

    /// Non-empty, printable ASCII only, no comma.
    package static func isSafe(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: ",") }
    }

    /// Whether a route's rules admit this identity: any of `anyRole` among the roles (`role`
    /// included), and every one of `allScopes` among the scopes.
    public func satisfies(anyRole: [String], allScopes: [String]) -> Bool {
        let hasRole = anyRole.isEmpty || anyRole.contains { self.roles.contains($0) || self.role == $0 }
        return hasRole && allScopes.allSatisfy(self.scopes.contains)
    }
}
