package camera

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"sync"
)

// Every URL below is an absolute path, as camera firmwares write them.

const loginHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Login</title>
<link rel="stylesheet" href="/doc/css/main.css">
<script src="/doc/script/app.js"></script>
</head><body class="login">
<img class="logo" src="/doc/img/logo.png" alt="logo" width="32" height="32">
<h1>Network Camera</h1>
<form id="login" method="post" action="/ISAPI/Security/sessionLogin">
<label>User <input name="user" autocomplete="username"></label>
<label>Password <input name="pass" type="password" autocomplete="current-password"></label>
<button type="submit">Login</button>
</form>
</body></html>
`

const loginFailedHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Login failed</title>
<link rel="stylesheet" href="/doc/css/main.css"></head>
<body><h1>Login failed</h1><p>Wrong user name or password. <a href="/doc/page/login.asp">Try again</a>.</p></body></html>
`

const mainHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Live View</title>
<link rel="stylesheet" href="/doc/css/main.css">
<script src="/doc/script/app.js"></script>
</head><body>
<div class="header"></div>
<h1>Live View</h1>
<p>Model: <span id="model"></span></p>
<img id="live" src="/ISAPI/Streaming/channels/101/httpPreview" alt="live" width="64" height="48">
<h2>WebSocket</h2><pre id="ws"></pre>
<h2>Firmware</h2>
<form id="fw" method="post" action="/ISAPI/System/updateFirmware" enctype="multipart/form-data">
<input type="file" name="firmware"> <button type="submit">Upload</button>
</form>
<pre id="upload"></pre>
<script src="/doc/script/main.js"></script>
</body></html>
`

const mainCSS = `body { font-family: sans-serif; margin: 2em; }
.header { height: 32px; background: url(/doc/img/logo.png) no-repeat; }
#live { border: 1px solid #333; image-rendering: pixelated; width: 256px; height: 192px; }
pre { background: #eee; padding: .5em; min-height: 1em; }
`

var scripts = map[string]string{
	"app.js": `// Shared by every page.
window.camState = window.camState || {};
window.camState.appLoaded = true;
`,
	// main.js assembles every URL at run time from absolute paths, so a
	// proxy cannot fix them by rewriting the HTML or string literals.
	"main.js": `(function () {
  'use strict';
  var st = window.camState = Object.assign(window.camState || {},
    {model: '', wsEchoes: [], liveLoads: 0, upload: null, errors: []});
  var isapi = '/' + 'ISAPI';
  function $(id) { return document.getElementById(id); }
  function fail(what) { return function (e) { st.errors.push(what + ': ' + (e && e.message || e.type || e)); }; }

  fetch(isapi + '/System/' + 'deviceInfo', {credentials: 'same-origin'}).then(function (r) {
    if (!r.ok) throw new Error('HTTP ' + r.status);
    return r.text();
  }).then(function (xml) {
    var m = new DOMParser().parseFromString(xml, 'application/xml').getElementsByTagName('model')[0];
    st.model = m ? m.textContent : '';
    $('model').textContent = st.model;
  }).catch(fail('deviceInfo'));

  var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/echo');
  ws.onopen = function () { for (var i = 1; i <= 3; i++) ws.send('ping-' + i); };
  ws.onmessage = function (e) { st.wsEchoes.push(e.data); $('ws').textContent += e.data + '\n'; };
  ws.onerror = fail('websocket');

  var live = $('live');
  live.onload = function () { st.liveLoads++; };
  live.onerror = fail('mjpeg');

  // upload posts sizeBytes bytes (byte i = i % 251) as firmware and
  // resolves to the camera's {bytes, sha256} answer.
  window.upload = function (sizeBytes) {
    var buf = new Uint8Array(sizeBytes);
    for (var i = 0; i < sizeBytes; i++) buf[i] = i % 251;
    return fetch(isapi + '/System/' + 'updateFirmware', {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/octet-stream'}, body: new Blob([buf])})
      .then(function (r) { return r.text(); })
      .then(function (t) { $('upload').textContent = t; st.upload = JSON.parse(t); return st.upload; })
      .catch(function (e) { fail('upload')(e); throw e; });
  };
})();
`,
}

// logoPNG is a 32x32 PNG, generated on first use.
var logoPNG = sync.OnceValue(func() []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	for y := range 32 {
		for x := range 32 {
			c := color.NRGBA{200, 30, 40, 255}
			if (x-16)*(x-16)+(y-16)*(y-16) < 64 {
				c = color.NRGBA{255, 255, 255, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
})
