-- Correct-password logins (each starts a session): the cost is the Argon2 verification.
wrk.method = "POST"
wrk.path = "/auth/login"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench0@example.com","password":"correct horse battery"}'
