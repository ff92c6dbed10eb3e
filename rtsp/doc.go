// Package rtsp will hold the RTSP gateway of issue 4 (rtsp://relay:9554/
// {handle}/…, transport conversion, fan-out on gnet event loops). Nothing
// is built here yet.
package rtsp
