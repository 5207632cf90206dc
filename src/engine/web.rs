//! The protocol's messages as the browser carries them between the page and its worker: a JS
//! array `[header, buffer, …]` where the header is the postcard bytes and each buffer an
//! `ArrayBuffer` that is transferred (moved, not copied) to the other side.

use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use super::protocol::{Envelope, decode, encode};

/// The message to post and the list of buffers to transfer with it.
pub fn to_js<T: serde::Serialize>(envelope: &Envelope<T>) -> (JsValue, Array) {
    let parts = Array::new();
    let transfer = Array::new();
    parts.push(&Uint8Array::from(encode(&envelope.message).as_slice()));
    for bytes in &envelope.buffers {
        let array = Uint8Array::from(bytes.as_slice());
        let buffer = array.buffer();
        parts.push(&buffer);
        transfer.push(&buffer);
    }
    (parts.into(), transfer)
}

/// A posted message back into an envelope; a sentence when it is not one of ours.
pub fn from_js<T: serde::de::DeserializeOwned>(data: &JsValue) -> Result<Envelope<T>, String> {
    let parts: Array = data
        .clone()
        .dyn_into()
        .map_err(|_| "a message that is not an array".to_string())?;
    let header: Uint8Array = parts
        .get(0)
        .dyn_into()
        .map_err(|_| "a message without its header".to_string())?;
    let message = decode(&header.to_vec())?;
    let buffers = (1..parts.length())
        .map(|index| {
            parts
                .get(index)
                .dyn_into::<ArrayBuffer>()
                .map(|buffer| Uint8Array::new(&buffer).to_vec())
                .map_err(|_| "a message buffer that is not an ArrayBuffer".to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok(Envelope { message, buffers })
}
