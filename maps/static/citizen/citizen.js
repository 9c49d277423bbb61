/* The citizen's pages, better with JavaScript: category search, photo previews (and shrinking a large photo
   before it is sent, its EXIF GPS position sent beside it), one send per tap, copying the tracking link.
   The forms work without it. */
(function () {
  "use strict";
  function each(list, fn) { Array.prototype.forEach.call(list, fn); }
  each(document.querySelectorAll(".js-only"), function (el) { el.hidden = false; });

  // ---- category search: keep the options that match the name or the code
  var select = document.getElementById("category");
  var search = document.getElementById("category-search");
  if (select && search) {
    var groups = Array.prototype.map.call(select.querySelectorAll("optgroup"), function (g) {
      return { label: g.label, options: Array.prototype.map.call(g.querySelectorAll("option"), function (o) {
        return { value: o.value, text: o.textContent }; }) };
    });
    var placeholder = select.querySelector("option[value='']").textContent;
    var filter = function () {
      var q = search.value.trim().toLowerCase(), keep = select.value, values = {};
      while (select.firstChild) select.removeChild(select.firstChild);
      select.appendChild(new Option(placeholder, ""));
      groups.forEach(function (g) {
        var hits = g.options.filter(function (o) {
          return !q || o.text.toLowerCase().indexOf(q) >= 0 || o.value.indexOf(q) === 0;
        });
        if (!hits.length) return;
        var og = document.createElement("optgroup");
        og.label = g.label;
        hits.forEach(function (o) { og.appendChild(new Option(o.text, o.value)); values[o.value] = true; });
        select.appendChild(og);
      });
      var found = Object.keys(values);
      if (values[keep]) select.value = keep;
      else if (q && found.length === 1) select.value = found[0];
      else select.value = "";
    };
    search.addEventListener("input", filter);
  }

  // ---- photos: how many, previews, and each one made small enough for a weak connection before it is sent.
  // The server keeps at most 2048 px anyway (zonechief/photos.py): a 4032×3024 phone photo (3.5 MB) takes
  // ~2 min on 3G, the same at 2048 px q0.85 ~30 s. Re-encoding drops EXIF, so the GPS position is read here
  // first and sent beside the photo (photo_gps_N, "lon,lat"); the server uses it only for its staff note.
  var form = document.querySelector("form.report");
  var input = document.getElementById("photo");
  var previews = document.getElementById("previews");
  var SIDE = 2048, SMALL_BYTES = 1048576, QUALITY = 0.85, HEAD_BYTES = 262144;
  var readHead = function (file) {  // the first bytes: EXIF (APP1) and the frame header come before the pixels
    var part = file.slice(0, HEAD_BYTES);
    if (part.arrayBuffer) return part.arrayBuffer();
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () { resolve(r.result); };
      r.onerror = reject;
      r.readAsArrayBuffer(part);
    });
  };
  // {gps: [lon, lat] | null, side: longer side | 0} from a JPEG's markers; anything broken is just not known.
  var jpegFacts = function (buf) {
    var d = new DataView(buf), facts = { gps: null, side: 0 }, i = 2;
    if (d.byteLength < 4 || d.getUint16(0) !== 0xFFD8) return facts;
    while (i + 4 <= d.byteLength) {
      if (d.getUint8(i) !== 0xFF) return facts;
      var marker = d.getUint8(i + 1);
      if (marker === 0xFF) { i += 1; continue; }  // fill byte
      if (marker === 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker === 0x01) { i += 2; continue; }
      if (marker === 0xD9 || marker === 0xDA) return facts;  // end, or the pixels begin
      var len = d.getUint16(i + 2);
      if (len < 2) return facts;
      if (marker === 0xE1 && !facts.gps && i + 10 <= d.byteLength && d.getUint32(i + 4) === 0x45786966 &&
          d.getUint16(i + 8) === 0) {  // "Exif\0\0"
        try { facts.gps = exifGps(d, i + 10, Math.min(d.byteLength, i + 2 + len)); } catch (e) { facts.gps = null; }
      }
      // SOF0-15 but DHT (C4), JPG (C8) and DAC (CC): height and width follow the precision byte
      if (marker >= 0xC0 && marker <= 0xCF && marker !== 0xC4 && marker !== 0xC8 && marker !== 0xCC &&
          i + 9 <= d.byteLength) {
        facts.side = Math.max(d.getUint16(i + 5), d.getUint16(i + 7));
      }
      i += 2 + len;
    }
    return facts;
  };
  // The GPS IFD of a TIFF block at [t, end): [lon, lat] in degrees, or null (throws on a read past the end).
  var exifGps = function (d, t, end) {
    var order = d.getUint16(t), le;
    if (order === 0x4949) le = true; else if (order === 0x4D4D) le = false; else return null;
    if (d.getUint16(t + 2, le) !== 42) return null;
    var u16 = function (o) { if (t + o + 2 > end) throw 0; return d.getUint16(t + o, le); };
    var u32 = function (o) { if (t + o + 4 > end) throw 0; return d.getUint32(t + o, le); };
    var entries = function (ifd) {  // tag → {type, count, at: offset of the value (inline when ≤ 4 bytes)}
      var out = {}, n = u16(ifd);
      for (var k = 0; k < n; k++) {
        var e = ifd + 2 + 12 * k, type = u16(e + 2), count = u32(e + 4);
        var size = ({ 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 10: 8 })[type] || 0;
        out[u16(e)] = { type: type, count: count, at: size * count <= 4 ? e + 8 : u32(e + 8) };
      }
      return out;
    };
    var pointer = entries(u32(4))[0x8825];
    if (!pointer || (pointer.type !== 4 && pointer.type !== 13)) return null;
    var gps = entries(u32(pointer.at));
    var ref = function (tag) {  // an ASCII letter (N, S, E or W), inline in the entry
      var e = gps[tag];
      if (!e || e.type !== 2 || e.count < 1 || t + e.at >= end) return "";
      return String.fromCharCode(d.getUint8(t + e.at)).toUpperCase();
    };
    var degrees = function (tag, limit) {  // up to three rationals: degrees, minutes, seconds
      var e = gps[tag];
      if (!e || e.type !== 5 || e.count < 1 || e.count > 3) return NaN;
      var sum = 0;
      for (var k = 0; k < e.count; k++) {
        var num = u32(e.at + 8 * k), den = u32(e.at + 8 * k + 4);
        if (!den) return NaN;
        sum += num / den / Math.pow(60, k);
      }
      return sum <= limit ? sum : NaN;
    };
    var latRef = ref(1), lonRef = ref(3);
    var lat = degrees(2, 90), lon = degrees(4, 180);
    if ("NS".indexOf(latRef) < 0 || "EW".indexOf(lonRef) < 0 || !latRef || !lonRef || !isFinite(lat) || !isFinite(lon) ||
        (lat === 0 && lon === 0)) return null;  // without its ref the sign is a guess; 0,0 is a phone without a fix
    return [lonRef === "W" ? -lon : lon, latRef === "S" ? -lat : lat];
  };
  // The picture, turned as its EXIF orientation says: an ImageBitmap, else a decoded <img>; rejects if undecodable.
  var decode = function (file) {
    var viaImg = function () {
      return new Promise(function (resolve, reject) {
        var img = new Image(), url = URL.createObjectURL(file);
        img.onload = function () { URL.revokeObjectURL(url); resolve(img); };
        img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("undecodable")); };
        img.src = url;
      });
    };
    if (!window.createImageBitmap) return viaImg();
    return window.createImageBitmap(file, { imageOrientation: "from-image" }).catch(viaImg);
  };
  // [the file to send, its GPS or null]: a photo over SIDE px or SMALL_BYTES re-encoded at SIDE px as JPEG;
  // a small one, or one the browser cannot decode (HEIC on most Android phones), sent as it is.
  var prepare = function (file) {
    var facts = { gps: null, side: 0 };
    return readHead(file).then(function (buf) {
      facts = jpegFacts(buf);
    }, function () { /* unreadable head: decide by decoding */ }).then(function () {
      if (file.size <= SMALL_BYTES && facts.side && facts.side <= SIDE) return file;
      return decode(file).then(function (pic) {
        var w = pic.naturalWidth || pic.width, h = pic.naturalHeight || pic.height;
        if (file.size <= SMALL_BYTES && Math.max(w, h) <= SIDE) { if (pic.close) pic.close(); return file; }
        var scale = Math.min(1, SIDE / Math.max(w, h));
        var c = document.createElement("canvas");
        c.width = Math.max(1, Math.round(w * scale));
        c.height = Math.max(1, Math.round(h * scale));
        var g = c.getContext("2d");
        g.fillStyle = "#fff";  // transparency onto white, as the server does
        g.fillRect(0, 0, c.width, c.height);
        g.imageSmoothingQuality = "high";
        g.drawImage(pic, 0, 0, c.width, c.height);
        if (pic.close) pic.close();
        return new Promise(function (resolve) {
          c.toBlob(function (b) {
            var small = b && (b.size < file.size || Math.max(w, h) > SIDE);
            resolve(small ? new File([b], file.name.replace(/\.\w+$/, "") + ".jpg", { type: "image/jpeg" }) : file);
          }, "image/jpeg", QUALITY);
        });
      }, function () { return file; });
    }).then(function (out) { return [out, facts.gps]; }, function () { return [file, facts.gps]; });
  };
  var pending = null;  // the photos being prepared: Send waits for them
  if (form && input && previews) {
    var max = parseInt(form.getAttribute("data-max-photos"), 10) || 3;
    input.addEventListener("change", function () {
      var files = Array.prototype.slice.call(input.files || []);
      input.setCustomValidity(files.length > max ? "最多 " + max + " 张照片 / at most " + max + " photos" : "");
      if (files.length > max) input.reportValidity();
      while (previews.firstChild) previews.removeChild(previews.firstChild);
      each(form.querySelectorAll("input.photo-gps"), function (el) { el.parentNode.removeChild(el); });
      files.slice(0, max).forEach(function (f) {
        if (!/^image\//.test(f.type)) return;
        var img = document.createElement("img");
        img.alt = f.name;
        img.src = URL.createObjectURL(f);
        img.onload = function () { URL.revokeObjectURL(img.src); };
        previews.appendChild(img);
      });
      if (!files.length || files.length > max || !window.DataTransfer || !window.Promise || !window.DataView) return;
      var mine = pending = Promise.all(files.map(prepare)).then(function (out) {
        if (pending !== mine) return;  // other photos were chosen meanwhile
        var dt = new DataTransfer();
        out.forEach(function (pair, k) {
          dt.items.add(pair[0]);
          if (!pair[1]) return;
          var h = document.createElement("input");
          h.type = "hidden"; h.className = "photo-gps"; h.name = "photo_gps_" + (k + 1);
          h.value = pair[1][0].toFixed(7) + "," + pair[1][1].toFixed(7);
          form.appendChild(h);
        });
        input.files = dt.files;
        pending = null;
      }, function () { if (pending === mine) pending = null; });  // the photos go as they are
    });
    form.addEventListener("submit", function (e) {  // a tap on Send before the photos are ready: sent when they are
      if (!pending) return;
      e.preventDefault();
      var resend = function () { pending = null; form.submit(); };
      pending.then(resend, resend);
    });
  }

  // ---- one send per tap (the form's key makes a resend file the same report anyway)
  if (form) {
    var send = document.getElementById("send");
    form.addEventListener("submit", function () {
      if (!send) return;
      window.setTimeout(function () { send.disabled = true; }, 0);
      window.setTimeout(function () { send.disabled = false; }, 15000);
    });
    window.addEventListener("pageshow", function () { if (send) send.disabled = false; });
  }

  // ---- the receipt: copy the tracking link
  var copy = document.getElementById("copy-link");
  if (copy) {
    copy.addEventListener("click", function () {
      var link = copy.getAttribute("data-link");
      var done = function () { copy.textContent = "已复制 / Copied"; };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(link).then(done);
      else {
        var r = document.createRange();
        r.selectNodeContents(document.getElementById("tracking-link"));
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        try { document.execCommand("copy"); done(); } catch (e) { /* the link stays selected to copy by hand */ }
      }
    });
  }
})();
