package camera

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"strconv"
	"sync"
	"time"
)

const (
	frameW, frameH = 64, 48
	boundary       = "camboundary"
)

// frames are 256 small JPEGs, encoded once on first use. Frame n shows the
// bits of n, most significant first, as white (1) or black (0) 8x8 squares
// along the top, over a colour gradient.
var frames = sync.OnceValue(func() [][]byte {
	fs := make([][]byte, 256)
	for n := range fs {
		img := image.NewRGBA(image.Rect(0, 0, frameW, frameH))
		for y := range frameH {
			for x := range frameW {
				c := color.RGBA{uint8(x * 4), uint8(y * 5), uint8(n), 255}
				if y < 8 {
					c = color.RGBA{A: 255}
					if n&(0x80>>(x/8)) != 0 {
						c = color.RGBA{255, 255, 255, 255}
					}
				}
				img.Set(x, y, c)
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
			panic(err)
		}
		fs[n] = b.Bytes()
	}
	return fs
})

// FrameCounter reads back the counter (0-255) drawn into a decoded frame.
func FrameCounter(img image.Image) int {
	n := 0
	for bit := range 8 {
		r, g, b, _ := img.At(bit*8+4, 4).RGBA()
		n <<= 1
		if (r+g+b)/3 > 0x8000 {
			n |= 1
		}
	}
	return n
}

// mjpegStream sends multipart/x-mixed-replace JPEG frames every 100 ms,
// flushing each, until the client goes away (or after ?frames=N).
func (c *Camera) mjpegStream(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("frames"))
	c.mu.Lock()
	conn := len(c.mjpeg)
	c.mjpeg = append(c.mjpeg, 0)
	c.mu.Unlock()

	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+boundary)
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	t := time.NewTicker(tick)
	defer t.Stop()
	fs := frames()
	for n := 0; limit <= 0 || n < limit; n++ {
		f := fs[n%len(fs)]
		if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n", boundary, len(f), f); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		c.mu.Lock()
		c.mjpeg[conn]++
		c.mu.Unlock()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
	fmt.Fprintf(w, "--%s--\r\n", boundary)
}
