// SPDX-License-Identifier: Apache-2.0
public import GatehouseJOSE

/// The token providers a gateway trusts, selected by a token's exact `iss` (read before the
/// signature only to pick the provider, as Envoy's `providers` do).
public struct ProviderSet: Sendable {
    private let byIssuer: [String: Verifier]
    private let only: Verifier?

    public init(_ verifiers: [Verifier]) {
        var byIssuer: [String: Verifier] = [:]
        for verifier in verifiers {
            if let issuer = verifier.policy.issuer { byIssuer[issuer] = verifier }
        }
        self.byIssuer = byIssuer
        self.only = verifiers.count == 1 ? verifiers[0] : nil
    }

    /// Verifies `token` with the provider its `iss` names. With one provider, that provider judges
    /// every token (its own `iss` check reports a stranger as `bad_issuer`).
    public func verify(_ token: String, now: Double) throws(JOSEError) -> VerifiedToken {
        try self.verifyReturningLeeway(token, now: now).token
    }

    /// The same, with the leeway of the provider that judged it (for the token cache's deadline).
    func verifyReturningLeeway(_ token: String, now: Double) throws(JOSEError) -> (token: VerifiedToken, leeway: Double) {
        let verifier: Verifier
        if let only {
            verifier = only
        } else {
            guard let issuer = Self.peekIssuer(token) else { throw JOSEError(.malformed, "no iss to choose a provider by") }
            guard let chosen = self.byIssuer[issuer] else { throw JOSEError(.badIssuer, "no provider for this iss") }
            verifier = chosen
        }
        return (try verifier.verify(token, now: now), verifier.policy.leeway)
    }

    /// The unverified `iss` of a compact JWS, used for nothing but choosing the verifier.
    static func peekIssuer(_ token: String) -> String? {
        let parts = token.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        // The bytes are parsed inside withUnsafeBytes: the pointer is valid only there (the fuzzer
        // found the array freed under a parse that had been handed an escaped pointer).
        guard parts.count == 3, let payload = Base64URL.decode(parts[1]),
            let claims = payload.withUnsafeBytes({ try? JSONReader.parse($0) })
        else { return nil }
        return claims.objectValue?["iss"]?.stringValue
    }
}
