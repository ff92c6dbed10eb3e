package relay

// PasswordHashes counts the argon2id hashes s computed to check passwords.
func PasswordHashes(s *Server) int64 { return s.auth.pw.hashes.Load() }

// PeakPasswordHashing is the most password hashes s ever computed at once.
func PeakPasswordHashing(s *Server) int { return int(s.auth.pw.peak.Load()) }
