package relay

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/nanodems/connector/internal/atomicfile"
	"github.com/nanodems/connector/relay/store"
)

// deviceCreds is a device's login, as the relay holds it to answer the
// camera's Basic or Digest challenge itself: operators never learn camera
// passwords, and Digest works although the browser's path (/c/{h}/x)
// differs from the camera's (/x).
type deviceCreds struct {
	Username string `json:"u"`
	Password string `json:"p"`
}

// sealer encrypts device logins at rest under a key that lives in the data
// directory (mode 0600), not in the database: a copy of the database alone
// does not give away camera passwords. It opens them for the parts that
// answer a camera's login (browser proxy, RTSP gateway) and seals them for
// the API, caching what it opened.
type sealer struct {
	store store.Store
	aead  cipher.AEAD
	mu    sync.Mutex
	open  map[string]*deviceCreds // device id → opened creds (nil: none)
}

func newSealer(dataDir string, st store.Store) (*sealer, error) {
	path := filepath.Join(dataDir, "device-key")
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		rand.Read(key)
		err = atomicfile.Write(path, key, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("relay: device key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("relay: device key %s has %d bytes, want 32", path, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{store: st, aead: aead, open: map[string]*deviceCreds{}}, nil
}

// seal encrypts c for one device: the device id is additional data, so a
// sealed blob copied onto another device's row does not open.
func (s *sealer) seal(deviceID string, c deviceCreds) []byte {
	plain, _ := json.Marshal(c)
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(deviceID))
}

func (s *sealer) unseal(deviceID string, sealed []byte) (deviceCreds, error) {
	var c deviceCreds
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return c, errors.New("sealed credentials too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(deviceID))
	if err != nil {
		return c, fmt.Errorf("open credentials of %s: %w", deviceID, err)
	}
	return c, json.Unmarshal(plain, &c)
}

// credsFor returns the device's login, or nil when it has none. Opened
// logins are cached; forgetCreds invalidates.
func (s *sealer) credsFor(ctx context.Context, deviceID string) (*deviceCreds, error) {
	s.mu.Lock()
	c, ok := s.open[deviceID]
	s.mu.Unlock()
	if ok {
		return c, nil
	}
	sealed, err := s.store.GetDeviceCredentials(ctx, deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c = nil
	case err != nil:
		return nil, err
	default:
		dc, err := s.unseal(deviceID, sealed)
		if err != nil {
			return nil, err
		}
		c = &dc
	}
	s.mu.Lock()
	s.open[deviceID] = c
	s.mu.Unlock()
	return c, nil
}

// sealCreds is the stored form of a device's login: nil for none.
func (s *sealer) sealCreds(deviceID string, c *deviceCreds) []byte {
	if c == nil {
		return nil
	}
	return s.seal(deviceID, *c)
}

// forgetCreds drops what the sealer caches of a device's login, after the
// store has a new one (or none).
func (s *sealer) forgetCreds(deviceID string) {
	s.mu.Lock()
	delete(s.open, deviceID)
	s.mu.Unlock()
}
