// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// JOSE's raw r‖s ECDSA signatures and the DER form libcrypto speaks.
enum ECDSASignature {
    /// Writes the DER `SEQUENCE { INTEGER r, INTEGER s }` for a raw signature into `output`,
    /// returning its length, or nil when the signature has the wrong size or r or s lies outside
    /// [1, n-1] (which also refuses the r = s = 0 "psychic signature", CVE-2022-21449).
    static func derFromRaw(
        _ raw: UnsafeRawBufferPointer, curve: EVPKey.Curve, into output: UnsafeMutableRawBufferPointer
    ) -> Int? {
        let size = curve.coordinateByteCount
        guard raw.count == 2 * size else { return nil }
        let r = UnsafeRawBufferPointer(rebasing: raw[0..<size])
        let s = UnsafeRawBufferPointer(rebasing: raw[size...])
        let order = curve.order
        guard isInRange(r, order: order), isInRange(s, order: order) else { return nil }

        // Each INTEGER: minimal big-endian, with a 0x00 in front when the top bit is set.
        func integerLength(_ value: UnsafeRawBufferPointer) -> (skip: Int, length: Int) {
            var skip = 0
            while skip < value.count - 1, value[skip] == 0 { skip += 1 }
            let padded = value[skip] & 0x80 != 0 ? 1 : 0
            return (skip, value.count - skip + padded)
        }
        let (rSkip, rLength) = integerLength(r)
        let (sSkip, sLength) = integerLength(s)
        let contentLength = 2 + rLength + 2 + sLength
        // P-521's content can exceed 127 bytes and then needs the long length form.
        let headerLength = contentLength > 127 ? 3 : 2
        guard headerLength + contentLength <= output.count else { return nil }

        var index = 0
        func put(_ byte: UInt8) {
            output[index] = byte
            index += 1
        }
        put(0x30)
        if contentLength > 127 { put(0x81) }
        put(UInt8(contentLength))
        for (value, skip, length) in [(r, rSkip, rLength), (s, sSkip, sLength)] {
            put(0x02)
            put(UInt8(length))
            if length > value.count - skip { put(0) }
            for i in skip..<value.count { put(value[i]) }
        }
        return index
    }

    /// The raw r‖s form of a DER signature, each half padded to the curve's size.
    static func rawFromDER(_ der: [UInt8], curve: EVPKey.Curve) throws(OpenSSLError) -> [UInt8] {
        let size = curve.coordinateByteCount
        let decoded: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let decoded else { throw OpenSSLError.drain("d2i_ECDSA_SIG") }
        defer { ECDSA_SIG_free(decoded) }
        var raw = [UInt8](repeating: 0, count: 2 * size)
        let written = raw.withUnsafeMutableBufferPointer { out -> Bool in
            BN_bn2binpad(ECDSA_SIG_get0_r(decoded), out.baseAddress, Int32(size)) == size
                && BN_bn2binpad(ECDSA_SIG_get0_s(decoded), out.baseAddress! + size, Int32(size)) == size
        }
        guard written else { throw OpenSSLError.drain("BN_bn2binpad") }
        return raw
    }

    /// 1 ≤ value ≤ order − 1, comparing big-endian byte strings of equal length.
    private static func isInRange(_ value: UnsafeRawBufferPointer, order: [UInt8]) -> Bool {
        var isZero = true
        for byte in value where byte != 0 {
            isZero = false
            break
        }
        if isZero { return false }
        for i in 0..<value.count {
            if value[i] != order[i] { return value[i] < order[i] }
        }
        return false  // equal to the order
    }
}

extension EVPKey.Curve {
    /// The order n of the curve's base point, big-endian, `coordinateByteCount` bytes, read from libcrypto once.
    var order: [UInt8] {
        switch self {
        case .p256: CurveOrders.shared.p256
        case .p384: CurveOrders.shared.p384
        case .p521: CurveOrders.shared.p521
        }
    }
}

private final class CurveOrders: Sendable {
    static let shared = CurveOrders()
    let p256: [UInt8]
    let p384: [UInt8]
    let p521: [UInt8]

    private init() {
        func order(_ curve: EVPKey.Curve) -> [UInt8] {
            guard let group = EC_GROUP_new_by_curve_name(OBJ_sn2nid(curve.groupName)) else {
                fatalError("libcrypto has no \(curve.groupName)")
            }
            defer { EC_GROUP_free(group) }
            var bytes = [UInt8](repeating: 0, count: curve.coordinateByteCount)
            let written = BN_bn2binpad(EC_GROUP_get0_order(group), &bytes, Int32(bytes.count))
            precondition(written == bytes.count, "curve order does not fit")
            return bytes
        }
        self.p256 = order(.p256)
        self.p384 = order(.p384)
        self.p521 = order(.p521)
    }
}
