// SPDX-License-Identifier: Apache-2.0
@testable import GatehouseIssuer
import Testing

@Suite("Login limit keys")
struct LoginLimitKeysTests {
    @Test("an IPv6 client counts by its /64, an IPv4 client (also IPv4-mapped) by its address")
    func addresses() {
        #expect(LoginLimitKeys.address("2001:db8:1:2::1") == "address:2001:db8:1:2::/64")
        #expect(LoginLimitKeys.address("2001:DB8:1:2:aaaa:bbbb:cccc:dddd") == "address:2001:db8:1:2::/64")
        #expect(LoginLimitKeys.address("2001:db8:1:3::1") == "address:2001:db8:1:3::/64")
        #expect(LoginLimitKeys.address("::1") == "address:::/64")
        #expect(LoginLimitKeys.address("198.51.100.7") == "address:198.51.100.7")
        #expect(LoginLimitKeys.address("::ffff:198.51.100.7") == "address:198.51.100.7")
        #expect(LoginLimitKeys.address("unknown") == "address:unknown")
    }
}
