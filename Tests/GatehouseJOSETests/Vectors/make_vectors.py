import json, base64, hashlib, hmac
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519, padding, utils
from cryptography.hazmat.primitives import hashes
def d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def i(s): return int.from_bytes(d(s), "big")
payload_joe = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
frodo = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
bilbo = dict(kty="RSA", kid="bilbo.baggins@hobbiton.example", use="sig",
  n="n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw",
  e="AQAB",
  d="bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8uJbvQ-A1irkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QWDDqpaIsA-bMwWWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-DqEiWxqg82sXt2h-LMnT3046AOYJoRioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoFau7gdsPfHPxxjVOcOpBrQzwQ",
  p="3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4Vupk8rw9JR0AzZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k",
  q="uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUeq3MP15vMMON8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc",
  dp="B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-TanevuRPRt5OBOdiMGQp8pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009Qf1HvChixRX59ehik",
  dq="CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOFbwTxYWZDm6sI6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9AqC2yeL6kdKT1cYF8",
  qi="3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_jcK8-TRXvaKe-7ZMaQj8VfBdYkssbu0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4")
a2 = dict(kty="RSA",
  n="ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
  e="AQAB",
  d="Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ")
# complete a2 with CRT parameters recovered from n, e, d
n,e,dd = i(a2["n"]), i(a2["e"]), i(a2["d"])
p,q = rsa.rsa_recover_prime_factors(n,e,dd)
def b(x): 
    l=(x.bit_length()+7)//8; return base64.urlsafe_b64encode(x.to_bytes(l,"big")).rstrip(b"=").decode()
vec = []
def check_rsa(jwk, token, alg, pss=False):
    n,e,dd = i(jwk["n"]), i(jwk["e"]), i(jwk["d"])
    p,q = rsa.rsa_recover_prime_factors(n,e,dd)
    key = rsa.RSAPrivateNumbers(p,q,dd,rsa.rsa_crt_dmp1(dd,p), rsa.rsa_crt_dmq1(dd,q), rsa.rsa_crt_iqmp(p,q), rsa.RSAPublicNumbers(e,n)).private_key()
    h,pl,s = token.split(".")
    hsh = {"256":hashes.SHA256(),"384":hashes.SHA384(),"512":hashes.SHA512()}[alg[2:]]
    pad = padding.PSS(mgf=padding.MGF1(hsh), salt_length=hsh.digest_size) if pss else padding.PKCS1v15()
    key.public_key().verify(d(s), f"{h}.{pl}".encode(), pad, hsh)
    if not pss: assert key.sign(f"{h}.{pl}".encode(), pad, hsh) == d(s)
a2_token = "eyJhbGciOiJSUzI1NiJ9." + payload_joe + ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
check_rsa(a2, a2_token, "RS256")
a1_key = dict(kty="oct", k="AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
a1_token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + payload_joe + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
h,pl,s = a1_token.split("."); assert hmac.new(d(a1_key["k"]), f"{h}.{pl}".encode(), hashlib.sha256).digest() == d(s)
a3_key = dict(kty="EC", crv="P-256", x="f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y="x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", d="jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI")
a3_token = "eyJhbGciOiJFUzI1NiJ9." + payload_joe + ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
a4_key = dict(kty="EC", crv="P-521", x="AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk", y="ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2", d="AY5pb7A0UFiB3RELSD64fTLOSV_jazdF7fLYyuTw8lOfRhWg6Y6rUrPAxerEzgdRhajnu0ferB0d53vM9mE15j2C")
a4_token = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn"
def check_ec(jwk, token, curve, hsh, size):
    pub = ec.EllipticCurvePublicNumbers(i(jwk["x"]), i(jwk["y"]), curve).public_key()
    priv = ec.derive_private_key(i(jwk["d"]), curve); assert priv.public_key().public_numbers() == pub.public_numbers()
    h,pl,s = token.split("."); sig = d(s); assert len(sig) == 2*size
    pub.verify(utils.encode_dss_signature(int.from_bytes(sig[:size],"big"), int.from_bytes(sig[size:],"big")), f"{h}.{pl}".encode(), ec.ECDSA(hsh))
check_ec(a3_key, a3_token, ec.SECP256R1(), hashes.SHA256(), 32)
check_ec(a4_key, a4_token, ec.SECP521R1(), hashes.SHA512(), 66)
c41 = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9." + frodo + ".MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg"
c42 = "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9." + frodo + ".cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw"
check_rsa(bilbo, c41, "RS256"); check_rsa(bilbo, c42, "PS384", pss=True)
bilbo_ec = dict(kty="EC", kid="bilbo.baggins@hobbiton.example", use="sig", crv="P-521",
  x="AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
  y="AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
  d="AAhRON2r9cqXX1hg-RoI6R1tX5p2rUAYdmpHZoC1XNM56KtscrX6zbKipQrCW9CGZH3T4ubpnoTKLDYJ_fF3_rJt")
c43 = "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9." + frodo + ".AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2"
check_ec(bilbo_ec, c43, ec.SECP521R1(), hashes.SHA512(), 66)
hmac_key = dict(kty="oct", kid="018c0ae5-4d9b-471b-bfd6-eef314bc7037", use="sig", alg="HS256", k="hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg")
c44 = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9." + frodo + ".s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0"
h,pl,s = c44.split("."); assert hmac.new(d(hmac_key["k"]), f"{h}.{pl}".encode(), hashlib.sha256).digest() == d(s)
ed_key = dict(kty="OKP", crv="Ed25519", d="nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", x="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
ed_token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
edpriv = ed25519.Ed25519PrivateKey.from_private_bytes(d(ed_key["d"]))
from cryptography.hazmat.primitives import serialization as S
assert edpriv.public_key().public_bytes(S.Encoding.Raw, S.PublicFormat.Raw) == d(ed_key["x"])
h,pl,s = ed_token.split("."); assert edpriv.sign(f"{h}.{pl}".encode()) == d(s)
thumb_key = dict(kty="RSA", e="AQAB", alg="RS256", kid="2011-04-29", n="0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
canon = json.dumps({k: thumb_key[k] for k in ("e","kty","n")}, separators=(",",":"))
assert base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
out = {
 "_source": "RFC 7515 appendix A, RFC 7520 section 4, RFC 8037 appendix A, RFC 7638 section 3.1; each checked with pyca/cryptography by make_vectors.py beside this file",
 "jws": [
  dict(name="RFC 7515 A.1 HS256", alg="HS256", key=a1_key, token=a1_token, deterministic=True),
  dict(name="RFC 7515 A.2 RS256", alg="RS256", key=a2, token=a2_token, deterministic=True),
  dict(name="RFC 7515 A.3 ES256", alg="ES256", key=a3_key, token=a3_token, deterministic=False),
  dict(name="RFC 7515 A.4 ES512", alg="ES512", key=a4_key, token=a4_token, deterministic=False),
  dict(name="RFC 7520 4.1 RS256", alg="RS256", key=bilbo, token=c41, deterministic=True),
  dict(name="RFC 7520 4.2 PS384", alg="PS384", key=bilbo, token=c42, deterministic=False),
  dict(name="RFC 7520 4.3 ES512", alg="ES512", key=bilbo_ec, token=c43, deterministic=False),
  dict(name="RFC 7520 4.4 HS256", alg="HS256", key=hmac_key, token=c44, deterministic=True),
  dict(name="RFC 8037 A.4 EdDSA", alg="EdDSA", key=ed_key, token=ed_token, deterministic=True),
 ],
 "thumbprint": dict(key=thumb_key, thumbprint="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
}
json.dump(out, open("Tests/GatehouseJOSETests/Vectors/rfc-jws-vectors.json","w"), indent=1)
print("ok")
