// SPDX-License-Identifier: Apache-2.0
@testable import GatehouseIssuer
import Testing

@Suite("Client address and email normalisation")
struct ClientAddressTests {
    @Test("X-Forwarded-For counts only when the peer is a trusted proxy; then its last hop")
    func trustedProxies() throws {
        let none = try TrustedProxies([])
        #expect(none.clientAddress(peer: "10.0.0.5", forwardedFor: ["1.2.3.4"]) == "10.0.0.5")
        let proxies = try TrustedProxies(["10.0.0.0/8", "192.168.1.7", "fd00::/8"])
        #expect(proxies.clientAddress(peer: "10.9.8.7", forwardedFor: ["1.1.1.1, 2.2.2.2", "3.3.3.3"]) == "3.3.3.3")
        #expect(proxies.clientAddress(peer: "192.168.1.7", forwardedFor: ["5.5.5.5 "]) == "5.5.5.5")
        #expect(proxies.clientAddress(peer: "192.168.1.8", forwardedFor: ["5.5.5.5"]) == "192.168.1.8")
        #expect(proxies.clientAddress(peer: "fd12::1", forwardedFor: ["2001:db8::1"]) == "2001:db8::1")
        #expect(proxies.clientAddress(peer: "11.0.0.1", forwardedFor: ["5.5.5.5"]) == "11.0.0.1")
        // A trusted proxy that added nothing: the peer itself.
        #expect(proxies.clientAddress(peer: "10.0.0.1", forwardedFor: []) == "10.0.0.1")
        #expect(throws: IssuerSetupError.self) { try TrustedProxies(["10.0.0.0/33"]) }
        #expect(throws: IssuerSetupError.self) { try TrustedProxies(["proxy.example"]) }
    }

    @Test("emails are trimmed, lower-cased, and refused when implausible")
    func emails() {
        #expect(EmailAddress.normalize("  Ann@Example.COM ") == "ann@example.com")
        #expect(EmailAddress.normalize("a.b+tag@sub.example.org") == "a.b+tag@sub.example.org")
        for bad in ["", "ann", "@example.com", "ann@", "ann@example", "a b@example.com", "ann@@example.com", "ann@exa_mple.com",
            "ann@-example.com", "ann@example..com", String(repeating: "a", count: 65) + "@example.com"]
        {
            #expect(EmailAddress.normalize(bad) == nil, "\(bad)")
        }
    }
}
